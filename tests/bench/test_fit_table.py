"""The fit table's arithmetic, with the two timed loops replaced by fixed rates."""

from itertools import count

import pytest

from jaxconv.bench import fit


def test_fit_table_reports_median_ratio_and_per_round_range(monkeypatch):
    ours, theirs = iter([300.0, 330.0, 360.0]), count()
    monkeypatch.setattr(fit, "jaxconv_fit", lambda name, steps: next(ours))
    # PyTorch's two layouts: the table takes the better one of each round
    monkeypatch.setattr(fit, "torch_fit", lambda name, steps: {
        "nchw": 100.0, "channels_last": (300.0, 220.0, 240.0)[next(theirs)]})
    lines = list(fit.table(["resnet_bottleneck"], rounds=3))
    assert "median of 3 alternating rounds" in lines[0]
    # medians 330 / 240; rounds 300/300, 330/220, 360/240
    assert lines[-1] == "| resnet_bottleneck | 330 | 240 | 1.38 | 1.00-1.50 |"


def test_fewer_than_one_round_is_refused_at_the_call():
    with pytest.raises(ValueError, match="rounds=0; expected at least 1"):
        fit.table(["resnet_bottleneck"], rounds=0)
