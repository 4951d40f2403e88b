"""Datasets: loading, corrupt files, where we look, downloads, batching and augmentation."""

import gzip
import hashlib
import os
import pathlib
import pickle
import struct
import tarfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxconv import data
from jaxconv.data import datasets


def write_idx(path, array, magic=None, truncate=0):
    array = np.asarray(array, np.uint8)
    magic = magic or (2051 if array.ndim == 3 else 2049)
    raw = struct.pack(">i", magic) + struct.pack(f">{array.ndim}i", *array.shape) + \
        array.tobytes()
    with gzip.open(path, "wb") as f:
        f.write(raw[:len(raw) - truncate])


def fake_mnist(folder, n_train=20, n_test=10):
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("test", n_test)):
        images_file, labels_file = datasets.IDX_FILES[split]
        write_idx(folder / images_file, rng.integers(0, 256, (n, 28, 28)))
        write_idx(folder / labels_file, rng.integers(0, 10, n))


def test_digits_is_built_in_with_a_fixed_split():
    train, test = data.load("digits", "train"), data.load("digits", "test")
    assert train.images.shape == (1437, 8, 8, 1) and len(test) == 360
    assert train.images.dtype == np.uint8 and train.images.max() == 255
    again = data.load("digits", "train")
    assert np.array_equal(train.labels, again.labels)


def test_idx_files_load_from_data_dir(tmp_path):
    fake_mnist(tmp_path)
    ds = data.load("mnist", "train", data_dir=tmp_path)
    assert ds.images.shape == (20, 28, 28, 1) and ds.labels.dtype == np.int32


@pytest.mark.parametrize(("kind", "message"), [
    ("magic", "bad magic number 1234"),
    ("truncated", "the file is truncated or corrupt"),
    ("labels", "20 images but .* has 7 labels"),
    ("not_gzip", "cannot be read"),
])
def test_corrupt_files_are_errors_naming_the_file(tmp_path, kind, message):
    fake_mnist(tmp_path)
    images_file, labels_file = datasets.IDX_FILES["train"]
    if kind == "magic":
        write_idx(tmp_path / images_file, np.zeros((20, 28, 28)), magic=1234)
    elif kind == "truncated":
        write_idx(tmp_path / images_file, np.zeros((20, 28, 28)), truncate=100)
    elif kind == "labels":
        write_idx(tmp_path / labels_file, np.zeros(7))
    else:
        (tmp_path / images_file).write_bytes(b"this is not gzip data")
    with pytest.raises(data.DataError, match=message) as info:
        data.load("mnist", "train", data_dir=tmp_path)
    assert str(tmp_path) in str(info.value)


def test_missing_data_says_where_it_looked_and_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("JAXCONV_DATA_DIR", str(tmp_path / "env"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with pytest.raises(data.DataError) as info:
        data.load("mnist", "test", data_dir=tmp_path / "given")
    text = str(info.value)
    for where in ("given", "env/mnist", "home/.cache/jaxconv/mnist", "/usr/share/datasets/mnist"):
        assert where in text
    assert "jaxconv data download mnist" in text


def test_environment_variable_folder_is_searched(tmp_path, monkeypatch):
    (tmp_path / "fashion_mnist").mkdir()
    fake_mnist(tmp_path / "fashion_mnist")
    monkeypatch.setenv("JAXCONV_DATA_DIR", str(tmp_path))
    assert len(data.load("fashion_mnist", "test")) == 10


def _cifar_batches(folder):
    rng = np.random.default_rng(0)
    folder.mkdir()
    for name, n in [*((f"data_batch_{i}", 4) for i in range(1, 6)), ("test_batch", 3)]:
        batch = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                 b"labels": rng.integers(0, 10, n).tolist()}
        (folder / name).write_bytes(pickle.dumps(batch))


def test_cifar10_from_folder_and_tar(tmp_path):
    _cifar_batches(tmp_path / "cifar-10-batches-py")
    ds = data.load("cifar10", "train", data_dir=tmp_path)
    assert ds.images.shape == (20, 32, 32, 3)
    raw = pickle.loads((tmp_path / "cifar-10-batches-py" / "data_batch_1").read_bytes())
    assert np.array_equal(ds.images[0, :, :, 0].ravel(), raw[b"data"][0, :1024])
    archive = tmp_path / "tar"
    archive.mkdir()
    with tarfile.open(archive / "cifar-10-python.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    assert np.array_equal(data.load("cifar10", "test", data_dir=archive).labels,
                          data.load("cifar10", "test", data_dir=tmp_path).labels)


def test_download_verifies_checksums(tmp_path, monkeypatch):
    served = tmp_path / "served"
    served.mkdir()
    fake_mnist(served)
    sums = {f: hashlib.md5((served / f).read_bytes()).hexdigest()
            for files in datasets.IDX_FILES.values() for f in files}
    monkeypatch.setitem(datasets.SOURCES, "mnist",
                        datasets.Source(served.as_uri() + "/", sums, "test"))
    folder = data.download("mnist", tmp_path / "dest")
    assert len(data.load("mnist", "train", data_dir=folder)) == 20
    bad = dict(sums, **{"t10k-labels-idx1-ubyte.gz": "0" * 32})
    monkeypatch.setitem(datasets.SOURCES, "mnist",
                        datasets.Source(served.as_uri() + "/", bad, "test"))
    with pytest.raises(data.DataError, match="does not match the expected"):
        data.download("mnist", tmp_path / "dest2")
    assert not (tmp_path / "dest2" / "t10k-labels-idx1-ubyte.gz").exists()
    assert not list((tmp_path / "dest2").glob("*.part"))


def test_batches_are_seeded_and_resumable():
    ds = data.load("synthetic", "train")
    batches = data.Batches(ds, 32, seed=3)
    full = [labels for _, labels in batches.epoch(1)]
    resumed = [labels for _, labels in batches.epoch(1, start=5)]
    assert len(full) == batches.steps_per_epoch == 8
    assert all(np.array_equal(a, b) for a, b in zip(full[5:], resumed))
    assert not np.array_equal(batches.order(0), batches.order(1))
    train, val = data.split_validation(ds, 0.25, seed=0)
    assert len(train) == 192 and len(val) == 64


def test_eval_batches_pad_and_weight():
    ds = data.load("synthetic", "test")
    seen = sum(float(w.sum()) for _, _, w in data.eval_batches(ds, 48))
    assert seen == len(ds)


def test_augmentation_is_keyed_and_shape_preserving():
    images = jnp.asarray(data.load("synthetic", "train").images[:8])
    key = jax.random.key(0)
    a = data.augment(key, images, crop_padding=2, flip=True)
    assert a.shape == images.shape and a.dtype == images.dtype
    assert jnp.array_equal(a, data.augment(key, images, crop_padding=2, flip=True))
    flipped = data.augment(key, images, crop_padding=0, flip=True)
    for original, out in zip(images, flipped):
        assert jnp.array_equal(out, original) or jnp.array_equal(out, original[:, ::-1])


@pytest.mark.slow
def test_fashion_mnist_from_the_debian_package():
    if not os.path.isdir("/usr/share/datasets/fashion-mnist") and os.environ.get("CI") != "true":
        pytest.skip("Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")
    train, test = data.load("fashion_mnist", "train"), data.load("fashion_mnist", "test")
    assert train.images.shape == (60000, 28, 28, 1) and len(test) == 10000
    assert sorted(np.unique(train.labels)) == list(range(10))


class _Payload:
    """Unpickling this runs code: what a planted file could do."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_cifar10_batches_load_without_running_code(tmp_path, protocol):
    folder = tmp_path / "cifar-10-batches-py"
    _cifar_batches(folder)
    for name in ["data_batch_1", "test_batch"]:
        batch = pickle.loads((folder / name).read_bytes())
        (folder / name).write_bytes(pickle.dumps(batch, protocol=protocol))
    assert len(data.load("cifar10", "test", data_dir=tmp_path)) == 3
    marker = tmp_path / "planted-code-ran"
    batch = pickle.loads((folder / "test_batch").read_bytes())
    (folder / "test_batch").write_bytes(
        pickle.dumps({**batch, b"batch_label": _Payload(marker)}, protocol=protocol))
    with pytest.raises(data.DataError, match=r"test_batch: not a CIFAR-10 python batch "
                                             r"\(refused to load "):
        data.load("cifar10", "test", data_dir=tmp_path)
    assert not marker.exists()


def test_labels_outside_the_classes_are_refused(tmp_path):
    fake_mnist(tmp_path)
    labels = np.random.default_rng(0).integers(0, 10, 10)
    labels[7] = 12
    write_idx(tmp_path / datasets.IDX_FILES["test"][1], labels)
    with pytest.raises(data.DataError, match=r"mnist test: 1 labels outside 0..9, e.g. label "
                                             r"12 at index 7"):
        data.load("mnist", "test", data_dir=tmp_path)
    assert len(data.load("mnist", "train", data_dir=tmp_path)) == 20


def test_channel_stats_match_numpy_without_a_float64_copy_of_the_set():
    import tracemalloc

    from jaxconv import train

    r = np.random.default_rng(0)
    images = r.integers(0, 256, (20_000, 28, 28, 3), dtype=np.uint8)      # 47 MB
    ds = datasets.Dataset("test", "train", images, np.zeros(len(images), np.int32), 10)
    tracemalloc.start()
    train.channel_stats(ds)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 100e6, peak            # a float64 copy of the set alone is 376 MB
    small = images[:500].reshape(-1, 3).astype(np.float64) / 255
    small_ds = datasets.Dataset("test", "train", images[:500], np.zeros(500, np.int32), 10)
    np.testing.assert_allclose(train.channel_stats(small_ds, chunk=64),
                               (small.mean(0), small.std(0)), rtol=1e-6)
