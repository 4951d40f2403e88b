"""The records' configs keep to the issue's 0.3M-parameter cap: record.yaml, and best.yaml with
the search that chooses it (every row of the search is a candidate for best.yaml)."""

import pathlib

import pytest

from jaxconv.experiment import config
from jaxconv.models import ConvNet

ROOT = pathlib.Path(__file__).resolve().parents[2] / "configs" / "fashion_mnist"
CAPPED = [ROOT / "record.yaml", *sorted(ROOT.glob("best*.yaml"))]
CAP = 300_000
SEARCH = ROOT.parents[1] / "experiments" / "results" / "fashion_mnist" / "best_search"


def test_the_best_search_is_among_the_capped_configs():
    assert ROOT / "best_search.yaml" in CAPPED


@pytest.mark.parametrize("path", CAPPED, ids=lambda p: p.name)
def test_every_variant_of_a_record_config_is_within_the_cap(path):
    cfg = config.load(path)
    for variant in cfg.variants:
        count = ConvNet.param_count(variant.model, num_classes=10, in_features=1)
        assert count <= CAP, (path.name, variant.name, count)


def test_best_trains_the_row_its_search_chose():
    # best_search.yaml's rule chose the inverted residual at 32 epochs with cutout; best.yaml
    # must train what that row's runs trained, as their study folder recorded the config
    best = config.load(ROOT / "best.yaml")
    trained = config.load(SEARCH / "best-search-e32-cutout" / "config.yaml")
    (chosen,) = best.variants
    row = {v.name: v for v in trained.variants}[chosen.name]
    assert best.train == trained.train
    assert best.data == trained.data
    assert chosen.model == row.model
    assert best.seeds == (0, 1, 2)
