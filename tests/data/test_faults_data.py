"""Faults and hostile inputs in data loading and input checks (found by breaking them).

Crafted CIFAR-10 pickles that are tiny on disk but huge once expanded, download servers
on 127.0.0.1 that send too much or drip slowly, values finite in float64 but not in the
model's float32, raw Python warnings in the CLI, and messages that named a temporary
file or a NumPy internal instead of the argument.
"""

import dataclasses
import hashlib
import http.server
import pickle
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
import warnings
from typing import ClassVar

import numpy as np
import pytest
from test_cli import N_TEST, N_TRAIN, write_tiny_mnist
from test_data import (  # the fixtures are shared with test_data.py
    cifar_batch,
    cifar_members,
    isolated,  # noqa: F401
    small_specs,  # noqa: F401
    write_cifar_tar,
)

import cnnumpy
from cnnumpy import cli
from cnnumpy.cli import info
from cnnumpy.data import (
    ChecksumWarning,
    DatasetError,
    DownloadError,
    UnsafePickleError,
    cifar,
    download,
    load_cifar10,
    load_mnist,
    sources,
)
from cnnumpy.layers import Dense, Flatten
from cnnumpy.validation import check_inputs, check_targets

# ----------------------------------------------- 7. CIFAR pickles that expand in memory


def shared_nested_labels(depth: int) -> list:
    """A list holding the same list twice, ``depth`` times over: pickled once thanks to
    the memo (a few bytes per level), ``2 ** depth`` labels once expanded."""
    labels = [0]
    for _ in range(depth):
        labels = [labels, labels]
    return labels


def nested_batch(depth: int) -> bytes:
    entry = {
        b"data": np.zeros((2, 3072), np.uint8),
        b"labels": shared_nested_labels(depth),
    }
    return pickle.dumps(entry, protocol=2)


def test_shared_nested_labels_are_refused_before_any_expansion():
    data = nested_batch(22)  # 4 Mi labels, 32 MiB as int64, if expanded
    assert len(data) < 7000  # 6,144 bytes of it are the two rows of pixels
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(
            DatasetError,
            match=r"batch: labels must be integers in a flat list, "
            r"got a list at index 0",
        ):
            cifar.parse_batch(data, "batch")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - started < 0.5
    assert peak < 1 << 20


def test_an_exabyte_of_labels_is_refused_fast_and_in_little_memory(tmp_path):
    """2 ** 60 labels: in a child process capped at 2 GiB, so that a regression fails
    the test instead of taking the machine down."""
    path = tmp_path / "test_batch"
    path.write_bytes(nested_batch(60))
    code = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))\n"
        "from cnnumpy.data import DatasetError, cifar\n"
        "try:\n"
        f"    cifar.parse_batch(open({str(path)!r}, 'rb').read())\n"
        "except DatasetError as exc:\n"
        "    print(exc)\n"
    )
    env = {"OPENBLAS_NUM_THREADS": "1", "PATH": ""}
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-400:]
    assert "labels must be integers in a flat list" in done.stdout


def _batch(**entry):
    return pickle.dumps(entry, protocol=2)


PIXELS = np.zeros((3, 3072), np.uint8)


@pytest.mark.parametrize(
    "entry, message",
    [
        ({b"data": PIXELS, b"labels": [0, [1], 2]}, r"got a list at index 1"),
        ({b"data": PIXELS, b"labels": [0, True, 2]}, r"got a bool at index 1"),
        ({b"data": PIXELS, b"labels": [0, b"1", 2]}, r"got a bytes at index 1"),
        (
            {b"data": PIXELS, b"labels": (0, 1, 2)},
            r"labels must be integers in a flat list, got a tuple",
        ),
        ({b"data": PIXELS, b"labels": [0, 1, 10]}, r"labels must lie in \[0, 9\]"),
        ({b"data": PIXELS, b"labels": [-1, 1, 2]}, r"labels must lie in \[0, 9\]"),
        (
            {b"data": PIXELS, b"labels": np.zeros((3, 1), np.int64)},
            r"labels must be integers in a flat list, got an array of shape \(3, 1\)",
        ),
        ({b"data": PIXELS.tobytes(), b"labels": [0, 1, 2]}, "must be a uint8 array"),
        ({b"data": PIXELS, b"labels": [0, 1, 2], 7: b"x"}, "keys must be bytes or str"),
    ],
)
def test_batch_structure_is_checked_strictly(entry, message):
    with pytest.raises(DatasetError, match=message):
        cifar.parse_batch(pickle.dumps(entry, protocol=2))


def test_a_well_formed_array_of_labels_is_still_accepted():
    data = _batch(data=PIXELS, labels=np.array([3, 1, 2]))
    x, y = cifar.parse_batch(data)
    assert x.shape == (3, 3, 32, 32) and y.tolist() == [3, 1, 2] and y.dtype == np.int64


def test_more_rows_than_a_batch_holds_are_refused(monkeypatch):
    monkeypatch.setattr(cifar, "BATCH_ROWS", 2)
    with pytest.raises(DatasetError, match=r"at most 2 images per batch, got 3"):
        cifar.parse_batch(_batch(data=PIXELS, labels=[0, 1, 2]))


class DirectArray:
    """Pickles as a direct call ``numpy.ndarray((rows, 3072), "u1")``: uninitialised
    memory of any size, without the bytes being in the file."""

    def __reduce__(self):
        return (np.ndarray, ((10**7, 3072), "u1"))


def test_numpy_ndarray_cannot_be_called_to_allocate():
    data = pickle.dumps({b"data": DirectArray(), b"labels": [0]}, protocol=2)
    assert len(data) < 200  # 30 GB of pixels when loaded
    with pytest.raises(UnsafePickleError, match=r"numpy.ndarray may only be rebuilt"):
        cifar.parse_batch(data)


def hex_chain(levels: int) -> bytes:
    """``codecs.encode(codecs.encode(..., "hex"), "hex")``: each level doubles."""
    stream = b"C\x01a"  # SHORT_BINBYTES b"a"
    for _ in range(levels):
        stream = b"c_codecs\nencode\n(" + stream + b"X\x03\x00\x00\x00hext" + b"R"
    return stream + b"."


def test_codecs_encode_only_turns_latin1_text_into_bytes():
    with pytest.raises(UnsafePickleError, match=r"_codecs.encode.*'hex'"):
        cifar.safe_loads(hex_chain(20))  # 1 MiB from 0.6 KB; 40 levels: 1 TiB


@pytest.mark.parametrize("protocol", [2, 4])
def test_genuine_batches_still_load(protocol):
    data, pixels, labels = cifar_batch(5, seed=1, protocol=protocol)
    x, y = cifar.parse_batch(data)
    np.testing.assert_array_equal(x.reshape(5, -1), pixels)
    assert y.tolist() == labels


def test_the_pickle_size_is_bounded(monkeypatch):
    data = _batch(data=PIXELS, labels=[0, 1, 2])
    monkeypatch.setattr(cifar, "MAX_MEMBER_BYTES", len(data) - 1)
    with pytest.raises(DatasetError, match=f"b: {len(data):,} bytes, more than"):
        cifar.parse_batch(data, "b")


# ----------------------------------------------- 9. downloads: size caps and a deadline


class Handler(http.server.BaseHTTPRequestHandler):
    """``flood``: endless bytes without a Content-Length; ``claim``: announces a huge
    Content-Length; ``drip``: one byte every 50 ms; ``ok``: the body."""

    routes: ClassVar[dict] = {}
    sent: ClassVar[list] = []

    def do_GET(self):
        mode, body = self.routes.get(self.path, ("ok", b""))
        self.send_response(200)
        if mode == "claim":
            self.send_header("Content-Length", str(10**12))
        elif mode in ("ok", "drip"):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self._send(mode, body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client hung up, as it should

    def _send(self, mode, body):
        if mode == "drip":
            for i in range(len(body)):
                self.wfile.write(body[i : i + 1])
                self.wfile.flush()
                time.sleep(0.05)
            return
        if mode == "ok":
            self.wfile.write(body)
            return
        chunk = bytes(64 * 1024)
        for _ in range(1024):  # 64 MiB at most, bounded even if the client never stops
            self.wfile.write(chunk)
            self.sent.append(len(chunk))

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    """Base URL of a local server; ``server.routes[path] = (mode, body)``."""
    Handler.routes, Handler.sent = {}, []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield type(
        "Server", (), {"url": base, "routes": Handler.routes, "sent": Handler.sent}
    )
    httpd.shutdown()
    httpd.server_close()


MD5 = "0" * 32


def test_a_flood_stops_at_the_size_cap(server, tmp_path):
    server.routes["/f"] = ("flood", b"")
    with pytest.raises(
        DownloadError, match=r"more data than expected: 100,001 bytes received"
    ) as info:
        download(
            server.url + "/f",
            tmp_path / "f",
            md5=MD5,
            max_bytes=100_000,
            timeout=5,
            progress=False,
        )
    text = str(info.value)
    assert f"{server.url}/f: more data than expected: 100,001 bytes received, " in text
    assert "at most 100,000 expected" in text
    assert sum(server.sent) < 8 << 20  # the server was cut off, not read to the end
    assert list(tmp_path.iterdir()) == []


def test_an_announced_length_above_the_cap_is_refused_before_reading(server, tmp_path):
    server.routes["/f"] = ("claim", b"")
    with pytest.raises(
        DownloadError,
        match=r"/f: the server announces 1,000,000,000,000 bytes, "
        r"at most 1,000 expected",
    ):
        download(
            server.url + "/f",
            tmp_path / "f",
            md5=MD5,
            max_bytes=1000,
            timeout=5,
            progress=False,
        )
    assert list(tmp_path.iterdir()) == []


def test_a_slow_drip_meets_the_deadline(server, tmp_path):
    body = bytes(1000)  # 50 s at one byte per 50 ms; each read is well within timeout
    server.routes["/f"] = ("drip", body)
    started = time.monotonic()
    with pytest.raises(
        DownloadError, match=r"/f: too slow: .* of 1,000 bytes after 0.5 s"
    ):
        download(
            server.url + "/f",
            tmp_path / "f",
            md5=hashlib.md5(body).hexdigest(),
            timeout=5,
            deadline=0.5,
            progress=False,
        )
    assert time.monotonic() - started < 3
    assert list(tmp_path.iterdir()) == []


def test_a_file_within_every_limit_still_downloads(server, tmp_path):
    body = b"payload" * 1000
    server.routes["/f"] = ("ok", body)
    dest = download(
        server.url + "/f",
        tmp_path / "f",
        md5=hashlib.md5(body).hexdigest(),
        max_bytes=len(body),
        deadline=10,
        timeout=5,
        progress=False,
    )
    assert dest.read_bytes() == body


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"max_bytes": 1.5}, r"max_bytes must be an integer >= 1, got 1.5"),
        ({"max_bytes": True}, r"max_bytes must be an integer >= 1, got True"),
        ({"max_bytes": 0}, r"max_bytes must be an integer >= 1, got 0"),
        ({"timeout": 0}, r"timeout must be a number of seconds > 0, got 0"),
        ({"deadline": float("nan")}, r"deadline must be a number of seconds > 0"),
    ],
)
def test_download_limits_are_checked(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match="download: " + message):
        download("http://127.0.0.1:9/f", tmp_path / "f", md5=MD5, **kwargs)


@pytest.mark.usefixtures("isolated")
def test_load_mnist_caps_a_flood_at_the_official_size(server, tmp_path, monkeypatch):
    """The official t10k labels are 10,008 bytes once decompressed; a server that sends
    megabytes for them is cut off near that size, not read to its end."""
    for stem in sources.MNIST.files["test"]:
        server.routes[f"/mnist/{stem}.gz"] = ("flood", b"")
    spec = dataclasses.replace(sources.MNIST, mirrors=(server.url + "/mnist/",))
    monkeypatch.setattr(sources, "MNIST", spec)
    monkeypatch.setattr(sources, "DOWNLOAD_TIMEOUT", 5.0)
    with pytest.raises(DatasetError, match=r"more data than expected: .* at most"):
        load_mnist("test")
    # the client stops near 8 MB; the sockets' buffers on both sides take a few MB
    # more before the server's writes fail: far below the 64 MiB it would send
    assert sum(server.sent) < 32 << 20
    assert list((tmp_path / "xdg" / "cnnumpy" / "mnist").iterdir()) == []


@pytest.mark.usefixtures("small_specs", "isolated")
def test_load_cifar10_caps_the_archive_at_its_exact_size(server, tmp_path, monkeypatch):
    server.routes["/cifar.tar.gz"] = ("flood", b"")
    spec = dataclasses.replace(
        sources.CIFAR10, urls=(server.url + "/cifar.tar.gz",), archive_bytes=50_000
    )
    monkeypatch.setattr(sources, "CIFAR10", spec)
    monkeypatch.setattr(sources, "DOWNLOAD_TIMEOUT", 5.0)
    with pytest.raises(DatasetError, match=r"at most 50,000 expected"):
        load_cifar10("test")
    write_cifar_tar(tmp_path / "served.tar.gz", cifar_members())
    archive = (tmp_path / "served.tar.gz").read_bytes()
    server.routes["/cifar.tar.gz"] = ("ok", archive)
    good = dataclasses.replace(
        spec, archive_md5=hashlib.md5(archive).hexdigest(), archive_bytes=len(archive)
    )
    monkeypatch.setattr(sources, "CIFAR10", good)
    with pytest.warns(ChecksumWarning):
        assert len(load_cifar10("test")) == 4


def test_an_unwritable_cache_names_the_folder_not_a_temp_file(tmp_path, monkeypatch):
    def refuse(dir, prefix, suffix):
        raise PermissionError(13, "Permission denied", f"{dir}/{prefix}x1y2{suffix}")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    with pytest.raises(
        DatasetError, match=r"cannot write .*f\.gz: Permission denied"
    ) as info:
        download("http://127.0.0.1:9/f", tmp_path / "f.gz", md5=MD5, progress=False)
    text = str(info.value)
    assert f"cannot write {tmp_path / 'f.gz'}: Permission denied" in text
    assert ".part" not in text and not isinstance(info.value, DownloadError)


# ------------------------------------------- 18. finite in float64, infinite in float32


def tiny_model(dtype="float32"):
    cnnumpy.seed(0)
    model = cnnumpy.Sequential([Flatten(), Dense(3)], input_shape=(1, 2, 2))
    model.astype(dtype)
    return model


BIG = np.ones((4, 1, 2, 2))
BIG[0, 0, 0, :2] = 1e300
BIG[3, 0, 1, 1] = -1e39


@pytest.mark.parametrize("method", ["fit", "predict", "evaluate", "train_on_batch"])
def test_float32_model_refuses_inputs_beyond_float32(method):
    model = tiny_model()
    model.compile(loss="cross_entropy")
    y = np.zeros(4, int)
    args = (BIG,) if method == "predict" else (BIG, y)
    kwargs = {"verbose": 0} if method == "fit" else {}
    with pytest.raises(
        ValueError,
        match=rf"{method}: x contains 3 value\(s\) too large for this float32 model "
        r"\(\|x\| > 3.4e\+38\), e.g. 1e\+300",
    ):
        getattr(model, method)(*args, **kwargs)


def test_float32_model_refuses_mse_targets_beyond_float32():
    model = tiny_model()
    model.compile(loss="mse")
    y = np.zeros((4, 3))
    y[1, 2] = 1e300
    with pytest.raises(
        ValueError,
        match=r"fit: y contains 1 value\(s\) too large for this float32 model",
    ):
        model.fit(np.ones((4, 1, 2, 2)), y, verbose=0)


def test_float64_model_accepts_what_float64_holds():
    model = tiny_model("float64")
    model.compile(loss="mse")
    x = np.ones((4, 1, 2, 2))
    x[0, 0, 0, 0] = 1e300
    assert np.isfinite(model.predict(x)).all()
    check_inputs(x, (1, 2, 2), "fit", dtype=np.float64)  # no error


def test_nan_and_overflow_are_counted_together():
    x = np.ones((2, 3))
    x[0, 0], x[1, 1], x[1, 2] = np.nan, np.inf, 1e300
    with pytest.raises(
        ValueError, match=r"fit: x contains 2 NaN or infinite value\(s\)"
    ):
        check_inputs(x, None, "fit", dtype=np.float64)
    with pytest.raises(
        ValueError, match=r"fit: x contains 2 NaN or infinite value\(s\) and 1 value"
    ):
        check_inputs(x, None, "fit", dtype=np.float32)
    with pytest.raises(ValueError, match=r"evaluate: y contains 2 NaN or infinite"):
        check_targets(x, 2, (3,), "mse", "evaluate", dtype=np.float32)


def test_a_ragged_list_is_reported_with_the_argument():
    with pytest.raises(ValueError, match=r"fit: x must be a rectangular array"):
        check_inputs([[1.0, 2.0], [3.0]], None, "fit")
    with pytest.raises(ValueError, match=r"fit: y must be a rectangular array"):
        check_targets([[1.0, 2.0], [3.0]], 2, (2,), "mse", "fit")


# ------------------------------------------------------- 20, 22. the command line


@pytest.fixture
def mnist_dir(tmp_path, monkeypatch):
    monkeypatch.setitem(sources.MNIST.sizes, "train", N_TRAIN)
    monkeypatch.setitem(sources.MNIST.sizes, "test", N_TEST)
    return write_tiny_mnist(tmp_path / "data")


def test_cli_shows_a_warning_as_one_clean_line(mnist_dir, monkeypatch, capsys):
    """The loader's real ChecksumWarning (the files are not the official ones), raised
    inside a command; ``summary`` stands in for ``train`` to keep the test fast."""

    def summary(args):
        return 0 if len(load_mnist("test", path=mnist_dir, download=False)) else 1

    monkeypatch.setattr(info, "summary", summary)
    before = warnings.showwarning
    with warnings.catch_warnings():
        warnings.simplefilter("always", ChecksumWarning)
        assert cli.main(["summary", "--model", "lenet1"]) == 0
    err = capsys.readouterr().err
    assert err.startswith("cnnumpy: warning: MNIST: t10k-images-idx3-ubyte"), err
    assert err.count("\n") == 1 and "differ from the official release" in err
    assert "warnings.warn" not in err and ".py:" not in err
    assert warnings.showwarning is before  # scoped to the run


def test_cli_warning_lines_are_one_line_each(monkeypatch, capsys):
    def summary(args):
        warnings.warn("first line\n  second line", UserWarning, stacklevel=1)
        return 0

    monkeypatch.setattr(info, "summary", summary)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        assert cli.main(["summary", "--model", "lenet5"]) == 0
    assert capsys.readouterr().err == "cnnumpy: warning: first line second line\n"


@pytest.mark.parametrize("option", ["--epochs", "--batch-size", "--limit", "--seed"])
@pytest.mark.parametrize("value", ["1.5", "1e3", "nan", "0x10"])
def test_cli_integers_refuse_fractions(option, value, capsys):
    argv = ["train", "--model", "lenet1", "--dataset", "mnist", "--out", "x"]
    assert cli.main([*argv, option, value]) == 2
    err = capsys.readouterr().err
    assert f"{option}: expected an integer" in err and f"got '{value}'" in err


# ------------------------------------------- 22. messages that name the right thing


@pytest.mark.parametrize("loader", [load_mnist, load_cifar10])
@pytest.mark.parametrize("path", [1.5, b"/tmp", ["a"]])
def test_a_path_that_is_not_a_path_is_named(loader, path):
    with pytest.raises(
        TypeError,
        match=rf"{loader.__name__}: path must be a str or os.PathLike "
        rf"\(a file or folder\), got {type(path).__name__}",
    ):
        loader("test", path=path, download=False)


def test_a_file_that_is_no_archive_is_named_without_tarfile_internals(tmp_path):
    bogus = tmp_path / "cifar-10-python.tar.gz"
    bogus.write_bytes(b"not an archive at all" * 10)
    with pytest.raises(
        DatasetError,
        match=r"cannot read the archive \(not a valid tar or tar\.gz file\)",
    ) as info:
        load_cifar10("test", path=bogus, download=False)
    text = str(info.value)
    assert text == f"{bogus}: cannot read the archive (not a valid tar or tar.gz file)"
