"""CIFAR-10 batches: parsing from the tar.gz and the folder, validation, pickle
safety."""

import os
import pickle
import tarfile

import numpy as np
import pytest
from test_data import (  # the fixtures are shared with test_data.py
    cifar_batch,
    cifar_members,
    isolated,  # noqa: F401
    raises_without_hanging,
    small_specs,  # noqa: F401
    write_cifar_folder,
    write_cifar_tar,
)

from cnnumpy.data import (
    ChecksumWarning,
    DatasetError,
    UnsafePickleError,
    cifar,
    load_cifar10,
)

pytestmark = pytest.mark.usefixtures("small_specs", "isolated")


def expected(members, names):
    parts = [pickle.loads(members[n], encoding="bytes") for n in names]
    x = np.concatenate([p[b"data"] for p in parts]).reshape(-1, 3, 32, 32)
    return x, np.concatenate([p[b"labels"] for p in parts])


@pytest.mark.parametrize("layout", ["tar", "folder"])
@pytest.mark.parametrize("split", ["train", "test"])
def test_cifar_roundtrip(tmp_path, layout, split):
    members = cifar_members()
    if layout == "tar":
        write_cifar_tar(tmp_path / cifar.ARCHIVE, members)
    else:
        write_cifar_folder(tmp_path, members)
    with pytest.warns(ChecksumWarning, match="CIFAR-10: .*batch"):
        ds = load_cifar10(split, path=tmp_path, download=False)
    x, y = expected(members, cifar.SPLIT_BATCHES[split])
    assert ds.x.shape == ((20, 3, 32, 32) if split == "train" else (4, 3, 32, 32))
    np.testing.assert_array_equal(ds.x, x)
    np.testing.assert_array_equal(ds.y, y)
    assert ds.y.dtype == np.int64 and ds.class_names[0] == "airplane"
    assert ds.checksum_ok is False


def test_cifar_direct_archive_and_float(tmp_path):
    members = cifar_members()
    write_cifar_tar(tmp_path / "any-name.tar.gz", members)
    with pytest.warns(ChecksumWarning):
        ds = load_cifar10("test", path=tmp_path / "any-name.tar.gz", dtype="float32")
    x, _ = expected(members, ["test_batch"])
    np.testing.assert_allclose(ds.x, x / np.float32(255))
    assert ds.x.dtype == np.float32 and 0 <= ds.x.min() and ds.x.max() <= 1


@pytest.mark.parametrize("protocol", [2, 3, 4])
def test_safe_loads_rebuilds_arrays(protocol):
    data, pixels, labels = cifar_batch(3, seed=0, protocol=protocol)
    x, y = cifar.parse_batch(data)
    np.testing.assert_array_equal(x.reshape(3, -1), pixels)
    np.testing.assert_array_equal(y, labels)


class Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("layout", ["tar", "folder"])
def test_malicious_pickle_is_refused_and_runs_nothing(tmp_path, layout):
    marker = tmp_path / "pwned"
    evil = pickle.dumps({b"data": Exploit(marker), b"labels": [0]}, protocol=2)
    members = cifar_members(overrides={"test_batch": evil})
    if layout == "tar":
        write_cifar_tar(tmp_path / cifar.ARCHIVE, members)
    else:
        write_cifar_folder(tmp_path, members)
    with pytest.raises(
        UnsafePickleError, match=r"refusing to load (posix|nt|os)\.system"
    ):
        load_cifar10("test", path=tmp_path, download=False)
    assert not marker.exists()


@pytest.mark.parametrize(
    "target", [("builtins", "eval"), ("numpy", "load"), ("subprocess", "Popen")]
)
def test_only_array_reconstruction_is_admitted(target):
    module, name = target
    payload = f"c{module}\n{name}\n(S'1'\ntR.".encode()
    with pytest.raises(UnsafePickleError, match=f"refusing to load {module}.{name}"):
        cifar.safe_loads(payload)


def test_archive_members_are_never_extracted(tmp_path):
    escape = tarfile.TarInfo("../escaped")
    escape.size = 3
    link = tarfile.TarInfo(f"{cifar.FOLDER}/data_batch_9")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    extra = [(escape, b"bad"), (link, None)]
    write_cifar_tar(tmp_path / cifar.ARCHIVE, cifar_members(), extra=extra)
    before = set(os.listdir(tmp_path))
    with pytest.warns(ChecksumWarning):
        load_cifar10("test", path=tmp_path, download=False)
    assert set(os.listdir(tmp_path)) == before
    assert not (tmp_path.parent / "escaped").exists()


def test_symlink_in_place_of_a_batch_is_refused(tmp_path):
    members = cifar_members()
    del members["test_batch"]
    link = tarfile.TarInfo(f"{cifar.FOLDER}/test_batch")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    write_cifar_tar(tmp_path / cifar.ARCHIVE, members, extra=[(link, None)])
    with pytest.raises(DatasetError, match="test_batch is not a batch file"):
        load_cifar10("test", path=tmp_path, download=False)


def test_missing_batch(tmp_path):
    members = cifar_members()
    del members["data_batch_3"]
    write_cifar_tar(tmp_path / cifar.ARCHIVE, members)
    with pytest.raises(
        DatasetError, match="archive lacks cifar-10-batches-py/data_batch_3"
    ):
        load_cifar10("train", path=tmp_path, download=False)


def _batch(**entry):
    return pickle.dumps(entry, protocol=2)


@pytest.mark.parametrize(
    "data, message",
    [
        (b"garbage", "not a valid pickle"),
        (pickle.dumps([1, 2], protocol=2), "expected a dict, got list"),
        (_batch(labels=[0]), "missing key 'data'"),
        (
            _batch(data=np.zeros((1, 3000), np.uint8), labels=[0]),
            r"must be \(N, 3072\)",
        ),
        (
            _batch(data=np.zeros((1, 3072), np.float32), labels=[0]),
            "must be a uint8 array",
        ),
        (_batch(data=np.zeros((2, 3072), np.uint8), labels=[0]), "expected 2 labels"),
        (_batch(data=np.zeros((1, 3072), np.uint8), labels=[1.5]), "must be integers"),
    ],
)
def test_malformed_batches(data, message):
    with pytest.raises(DatasetError, match=message):
        cifar.parse_batch(data)


def test_label_range_and_size_are_checked(tmp_path):
    bad = _batch(data=np.zeros((4, 3072), np.uint8), labels=[0, 1, 2, 10])
    write_cifar_folder(tmp_path, cifar_members(overrides={"test_batch": bad}))
    with pytest.raises(DatasetError, match=r"labels must lie in \[0, 9\]"):
        load_cifar10("test", path=tmp_path / cifar.FOLDER, download=False)
    short = _batch(data=np.zeros((3, 3072), np.uint8), labels=[0, 1, 2])
    (tmp_path / cifar.FOLDER / "test_batch").write_bytes(short)
    with pytest.raises(
        DatasetError, match="CIFAR-10 'test': expected 4 examples, found 3"
    ):
        load_cifar10("test", path=tmp_path / cifar.FOLDER, download=False)


def test_corrupt_archive(tmp_path):
    (tmp_path / cifar.ARCHIVE).write_bytes(b"\x1f\x8b" + bytes(100))
    with pytest.raises(DatasetError, match="cannot read the archive"):
        load_cifar10("test", path=tmp_path, download=False)


needs_fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes")


@needs_fifo
@pytest.mark.parametrize("given", ["folder", "archive"])
def test_a_fifo_as_the_archive_is_refused_not_read(tmp_path, given):
    fifo = tmp_path / cifar.ARCHIVE
    os.mkfifo(fifo)
    path = tmp_path if given == "folder" else fifo
    error = raises_without_hanging(
        fifo, load_cifar10, "test", path=path, download=False
    )
    assert isinstance(error, DatasetError)
    assert str(error) == f"{fifo} is not a regular file (it is a FIFO)"


@needs_fifo
@pytest.mark.parametrize("name", ["test_batch", "batches.meta"])
def test_a_fifo_as_a_batch_file_is_refused_not_read(tmp_path, name):
    folder = write_cifar_folder(tmp_path, cifar_members())
    fifo = folder / name
    fifo.unlink()
    os.mkfifo(fifo)
    error = raises_without_hanging(
        fifo, load_cifar10, "test", path=tmp_path, download=False
    )
    assert isinstance(error, DatasetError)
    assert str(error) == f"{fifo} is not a regular file (it is a FIFO)"
