"""Trained models out of run folders (`load_run`, `load_model`) and `jaxconv retention`."""

import json
import re
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest
import yaml
from flax import nnx

from jaxconv import data, experiment, models, train
from jaxconv.blocks import init as block_init
from jaxconv.cli import main

CONFIG = {
    "name": "tiny",
    "data": {"name": "synthetic"},
    "train": {"epochs": 1, "batch_size": 64, "eval_batch_size": 64, "learning_rate": 0.05},
    "model": {"layout": {"width": 16, "depth": 1, "stem_strides": 1}},
    "variants": [{"name": "bottleneck", "model": {"layout": {"block": "bottleneck"}}}],
    "seeds": [0],
}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("trained")
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(dict(CONFIG, output_dir=str(root / "runs"))))
    experiment.run(experiment.load(path), command="test", progress=False, log=lambda s: None)
    return root / "runs" / "tiny"


def _leaves(model):
    """Every array of the model's state, PRNG keys as their key data."""
    return [np.asarray(jax.random.key_data(x) if jax.dtypes.issubdtype(x.dtype,
                                                                       jax.dtypes.prng_key)
                       else x) for x in jax.tree.leaves(nnx.state(model))]


def test_a_runs_initial_model_is_a_function_of_its_seed_and_the_op_by_op_model():
    spec = models.ModelSpec.from_dict({**models.layout("bottleneck", 16, depth=1).to_dict(),
                                       "dropout": 0.1, "drop_path": 0.1})
    ds = data.load("synthetic", "train")
    built = [_leaves(experiment.trained.build_model(spec, ds, seed)) for seed in (0, 0, 1)]
    op_by_op = _leaves(models.ConvNet(spec, num_classes=ds.num_classes, in_features=1,
                                      rngs=nnx.Rngs(0)))
    assert all(np.array_equal(a, b) for a, b in zip(built[0], built[1], strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(built[0], built[2], strict=True))
    for ours, theirs in zip(built[0], op_by_op, strict=True):
        # compiled as one program, the scalings round differently: a few ulps; the dropout
        # streams' keys and counts and the BatchNorm statistics are exact
        assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
        np.testing.assert_allclose(ours, theirs, rtol=2e-6, atol=1e-7)


def test_the_loaded_model_gives_the_runs_test_accuracy(run_dir):
    trained = experiment.load_run(run_dir, "bottleneck")
    result = json.loads((run_dir / "bottleneck" / "seed-0" / "result.json").read_text())
    test = data.load("synthetic", "test")
    probabilities = trained.probabilities(test.images)
    assert probabilities.shape == (len(test), trained.num_classes)
    np.testing.assert_allclose(probabilities.sum(-1), 1, rtol=1e-5)
    accuracy = float(np.mean(probabilities.argmax(-1) == test.labels))
    assert accuracy == pytest.approx(result["history"][-1]["test_accuracy"])
    model = experiment.load_model(run_dir, "bottleneck")
    assert isinstance(model, models.ConvNet)
    np.testing.assert_allclose(np.asarray(model(trained.normalize(test.images[:8]))),
                               np.asarray(trained.model(trained.normalize(test.images[:8]))),
                               rtol=1e-6)
    initial = experiment.load_run(run_dir, "bottleneck", initial=True).model
    assert not np.allclose(np.asarray(initial.head.kernel[...]),
                           np.asarray(model.head.kernel[...]))


def test_the_initial_model_of_a_dirac_run_is_the_dirac_initialised_one(run_dir, tmp_path):
    # the same folder, its config saying the run started from identity filters in its blocks
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("checkpoints"))
    config = yaml.safe_load((copy / "config.yaml").read_text())
    config["train"]["dirac_init"] = True
    (copy / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    initial = experiment.load_run(copy, "bottleneck", initial=True)
    plain = experiment.trained.build_model(initial.spec, initial.dataset(), 0)
    dirac = nnx.clone(plain)
    assert block_init.dirac_blocks(dirac) > 0
    ours, theirs, before = _leaves(initial.model), _leaves(dirac), _leaves(plain)
    assert all(np.array_equal(a, b) for a, b in zip(ours, theirs, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(ours, before, strict=True))


def test_bad_run_folders_variants_and_seeds_are_clear_errors(run_dir, tmp_path):
    with pytest.raises(ValueError, match=r"is not a run folder .*no config\.yaml"):
        experiment.load_model(tmp_path, "bottleneck")
    with pytest.raises(ValueError, match=r"variant: 'botleneck' is not in .*did you mean "
                                         r"'bottleneck'"):
        experiment.load_model(run_dir, "botleneck")
    with pytest.raises(ValueError, match=r"seed 3 has not finished .*seeds of the config: "
                                         r"\[0\]"):
        experiment.load_model(run_dir, "bottleneck", seed=3)
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("checkpoints"))
    with pytest.raises(ValueError, match="has no checkpoints to load"):
        experiment.load_model(copy, "bottleneck")
    result = copy / "bottleneck" / "seed-0" / "result.json"
    result.write_text(json.dumps(dict(json.loads(result.read_text()), status="diverged",
                                      error="training diverged at step 3")))
    with pytest.raises(ValueError, match=r"diverged .*it has no trained model"):
        experiment.load_model(copy, "bottleneck")
    with pytest.raises(ValueError, match=r"images: expected shape \(N, 12, 12, 1\)"):
        experiment.load_run(run_dir, "bottleneck").probabilities(np.zeros((2, 8, 8, 1)))


def test_retention_command_prints_trained_and_initial_tables(run_dir, capsys):
    assert main(["retention", str(run_dir), "--variant", "bottleneck", "--images", "64"]) == 0
    out = capsys.readouterr().out
    assert "bottleneck seed 0, over 64 synthetic images: trained" in out
    assert ": at initialisation" in out
    assert out.count("| blocks.0.reduce.conv | 16 -> 4 |") == 2
    assert main(["retention", str(run_dir), "--variant", "nope"]) == 2
    assert "jaxconv retention: error: variant: 'nope' is not in" in capsys.readouterr().err


def test_predict_prints_or_writes_the_runs_probabilities(run_dir, tmp_path, capsys):
    test = data.load("synthetic", "test")
    np.save(tmp_path / "gray.npy", test.images[:5, ..., 0])       # no channel axis
    assert main(["predict", str(run_dir), str(tmp_path / "gray.npy"),
                 "--variant", "bottleneck"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("| image | class | probability |") and out.count("\n") == 7
    output = tmp_path / "p.npy"
    assert main(["predict", str(run_dir), str(tmp_path / "gray.npy"), "--variant",
                 "bottleneck", "--output", str(output)]) == 0
    expected = experiment.load_run(run_dir, "bottleneck").probabilities(test.images[:5])
    np.testing.assert_allclose(np.load(output), expected, rtol=1e-6)
    np.save(tmp_path / "bad.npy", np.zeros((2, 28, 28, 1), np.uint8))
    assert main(["predict", str(run_dir), str(tmp_path / "bad.npy"), "--variant",
                 "bottleneck"]) == 2
    assert "holds shape (2, 28, 28, 1); expected (N, 12, 12, 1)" in capsys.readouterr().err


def _run_without_jaxconv(artifact, images, tmp_path):
    """What the exported ``artifact`` gives for ``images``, from a Python without jaxconv."""
    np.save(tmp_path / "x.npy", images)
    script = ("import sys, jax, numpy as np\n"
              f"f = jax.export.deserialize(open({str(artifact)!r}, 'rb').read())\n"
              f"np.save({str(tmp_path / 'y.npy')!r}, np.asarray(f.call(np.load("
              f"{str(tmp_path / 'x.npy')!r}))))\n"
              "assert not any(m.startswith('jaxconv') for m in sys.modules)\n")
    subprocess.run([sys.executable, "-c", script], check=True, cwd=tmp_path)
    return np.load(tmp_path / "y.npy")


def test_an_exported_model_runs_any_batch_without_jaxconv(run_dir, tmp_path, capsys):
    artifact = tmp_path / "model.jax"
    assert main(["export", str(run_dir), "--variant", "bottleneck", "--output",
                 str(artifact)]) == 0
    assert "uint8 images (any number, 12, 12, 1) -> 4 class probabilities" in \
        capsys.readouterr().out
    test = data.load("synthetic", "test")
    expected = experiment.load_run(run_dir, "bottleneck").probabilities(test.images[:64])
    np.testing.assert_allclose(_run_without_jaxconv(artifact, test.images[:64], tmp_path),
                               expected, rtol=1e-5, atol=1e-7)
    exported = jax.export.deserialize(artifact.read_bytes())
    np.testing.assert_allclose(np.asarray(exported.call(test.images[:1])), expected[:1],
                               rtol=1e-5, atol=1e-7)
    # JAX alone runs it: no native kernel behind a custom call
    targets = set(re.findall(r"custom_call @(\w+)", exported.mlir_module()))
    assert targets <= {"shape_assertion"}, targets


def test_an_export_with_a_fixed_batch_takes_that_batch_only(run_dir, tmp_path, capsys):
    artifact = tmp_path / "model.jax"
    assert main(["export", str(run_dir), "--variant", "bottleneck", "--output", str(artifact),
                 "--batch-size", "4"]) == 0
    assert "uint8 images (4, 12, 12, 1) -> 4 class probabilities" in capsys.readouterr().out
    test = data.load("synthetic", "test")
    expected = experiment.load_run(run_dir, "bottleneck").probabilities(test.images[:4])
    np.testing.assert_allclose(_run_without_jaxconv(artifact, test.images[:4], tmp_path),
                               expected, rtol=1e-5, atol=1e-7)
    exported = jax.export.deserialize(artifact.read_bytes())
    assert exported.in_avals[0].shape == (4, 12, 12, 1)


def test_probabilities_compile_once_for_a_shape(run_dir, monkeypatch):
    run = experiment.load_run(run_dir, "bottleneck")
    images = data.load("synthetic", "test").images[:8]
    traces = []
    call = models.ConvNet.__call__
    monkeypatch.setattr(models.ConvNet, "__call__",
                        lambda self, x: traces.append(x.shape) or call(self, x))
    first = run.probabilities(images)
    np.testing.assert_array_equal(run.probabilities(images), first)
    assert traces == [(8, 12, 12, 1)]


def test_a_run_folder_keeps_the_normalisation_it_trained_with(run_dir, tmp_path, monkeypatch):
    stored = run_dir / "bottleneck" / "seed-0" / "normalization.json"
    mean, std = train.channel_stats(data.load("synthetic", "train"))
    saved = json.loads(stored.read_text())
    np.testing.assert_array_equal(np.asarray(saved["mean"], np.float32), mean)
    np.testing.assert_array_equal(np.asarray(saved["std"], np.float32), std)
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    (copy / "bottleneck" / "seed-0" / "normalization.json").write_text(
        json.dumps(dict(saved, mean=[0.25], std=[0.5])))

    def recomputed(*args, **kwargs):
        raise AssertionError("the normalisation was recomputed from the training set")

    monkeypatch.setattr(train, "channel_stats", recomputed)
    run = experiment.load_run(copy, "bottleneck")
    assert run.mean.tolist() == [0.25] and run.std.tolist() == [0.5]
    images = data.load("synthetic", "test").images[:4]
    logits = run.model(jax.numpy.asarray((images / 255.0 - 0.25) / 0.5, jax.numpy.float32))
    expected = np.asarray(jax.nn.softmax(logits, axis=-1))
    np.testing.assert_allclose(run.probabilities(images), expected, rtol=1e-5, atol=1e-7)
    exported = run.export(batch_size=4)
    np.testing.assert_allclose(np.asarray(exported.call(images)), expected, rtol=1e-5,
                               atol=1e-7)


def test_a_run_folder_from_before_the_normalisation_was_kept_recomputes_it(run_dir, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("normalization.json"))
    with pytest.warns(UserWarning, match=r"has no normalization\.json .*recomputed from the "
                                         r"synthetic training set on this machine"):
        run = experiment.load_run(copy, "bottleneck")
    mean, std = train.channel_stats(data.load("synthetic", "train"))
    np.testing.assert_array_equal(run.mean, mean)
    np.testing.assert_array_equal(run.std, std)
