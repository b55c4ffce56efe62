"""Downloads from a local HTTP server on 127.0.0.1: verified, atomic, no partial file.

The server (``http.server`` in a thread, port 0) serves fixed bytes per path and can
misbehave on purpose: 404, a body shorter than its Content-Length, a stall, or half a
body followed by a hang. A raw socket server drips a status line and headers.
"""

import dataclasses
import gzip
import hashlib
import http.server
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import ClassVar

import numpy as np
import pytest
from test_data import (  # the fixtures are shared with test_data.py
    cifar_members,
    isolated,  # noqa: F401
    small_specs,  # noqa: F401
    write_cifar_tar,
    write_mnist_split,
)

from cnnumpy.data import (
    DatasetError,
    DownloadError,
    download,
    load_cifar10,
    load_mnist,
    partfiles,
    sources,
)
from cnnumpy.data.download import file_sha256

PAYLOAD = gzip.compress(b"cnnumpy test payload " * 5000, mtime=0)
MD5 = hashlib.md5(PAYLOAD).hexdigest()
RAW_MD5 = hashlib.md5(gzip.decompress(PAYLOAD)).hexdigest()


class Handler(http.server.BaseHTTPRequestHandler):
    routes: ClassVar[dict] = {}
    hits: ClassVar[list] = []

    def do_GET(self):
        self.hits.append(self.path)
        mode, body = self.routes.get(self.path, ("404", b""))
        if mode == "404":
            self.send_error(404, "Not Found")
            return
        if mode == "stall":
            time.sleep(1.5)  # longer than the client's timeout; bounded
            return
        if mode == "hang":
            self._hang(body)
            return
        self.send_response(200)
        declared = len(body) * 2 if mode == "cut" else len(body)
        self.send_header("Content-Length", str(declared))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2] if mode == "cut" else body)
        self.wfile.flush()
        if mode == "cut":
            self.close_connection = True

    def _hang(self, body):
        """Half the body, then nothing for 5 s (bounded), as a download in progress."""
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2])
        self.wfile.flush()
        time.sleep(5)
        self.close_connection = True

    def log_message(self, *args):  # keep the test output quiet
        pass


@pytest.fixture
def server():
    """Base URL of a local server; set ``server.routes[path] = (mode, body)``."""
    Handler.routes, Handler.hits = {}, []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield type(
        "Server", (), {"url": base, "routes": Handler.routes, "hits": Handler.hits}
    )
    httpd.shutdown()
    httpd.server_close()


def test_success_lands_in_place_with_the_right_checksum(server, tmp_path):
    server.routes["/f.gz"] = ("ok", PAYLOAD)
    dest = download(
        [server.url + "/f.gz"],
        tmp_path / "c" / "f.gz",
        md5=MD5,
        timeout=5,
        progress=False,
    )
    assert dest == tmp_path / "c" / "f.gz"
    assert hashlib.md5(dest.read_bytes()).hexdigest() == MD5
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == ["f.gz"]


def test_decompressed_checksum_accepts_another_gzip_wrapper(server, tmp_path):
    rewrapped = gzip.compress(gzip.decompress(PAYLOAD), compresslevel=1, mtime=123)
    server.routes["/f.gz"] = ("ok", rewrapped)
    dest = download(
        server.url + "/f.gz",
        tmp_path / "f.gz",
        md5=MD5,
        gunzip_md5=RAW_MD5,
        timeout=5,
        progress=True,
    )
    assert dest.read_bytes() == rewrapped


def test_checksum_mismatch_leaves_nothing(server, tmp_path):
    server.routes["/f.gz"] = ("ok", PAYLOAD)
    with pytest.raises(DownloadError, match="f.gz: checksum mismatch: got md5 " + MD5):
        download(
            [server.url + "/f.gz"],
            tmp_path / "f.gz",
            md5="0" * 32,
            gunzip_md5="1" * 32,
            timeout=5,
            progress=False,
        )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("also_md5", [None, MD5, "0" * 32])
def test_sha256_is_checked_and_so_is_an_md5_given_beside_it(server, tmp_path, also_md5):
    server.routes["/f.gz"] = ("ok", PAYLOAD)
    sha = hashlib.sha256(PAYLOAD).hexdigest()
    if also_md5 == "0" * 32:  # right sha256, wrong md5: refused
        with pytest.raises(DownloadError, match="checksum mismatch: got md5 "):
            download(
                server.url + "/f.gz",
                tmp_path / "f.gz",
                sha256=sha,
                md5=also_md5,
                timeout=5,
                progress=False,
            )
        assert list(tmp_path.iterdir()) == []
        return
    dest = download(
        server.url + "/f.gz",
        tmp_path / "f.gz",
        sha256=sha,
        md5=also_md5,
        timeout=5,
        progress=False,
    )
    assert file_sha256(dest) == sha
    with pytest.raises(DownloadError, match=f"got sha256 {sha}, expected {'1' * 64}"):
        download(
            server.url + "/f.gz",
            tmp_path / "g.gz",
            sha256="1" * 64,
            md5=also_md5,
            timeout=5,
            progress=False,
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.gz"]


def test_connection_cut_mid_file_leaves_nothing(server, tmp_path):
    server.routes["/f.gz"] = ("cut", PAYLOAD)
    with pytest.raises(DownloadError, match="connection closed early"):
        download(
            [server.url + "/f.gz"],
            tmp_path / "f.gz",
            md5=MD5,
            timeout=5,
            progress=False,
        )
    assert list(tmp_path.iterdir()) == []


def test_timeout_is_reported(server, tmp_path):
    server.routes["/slow"] = ("stall", b"")
    with pytest.raises(DownloadError, match="slow: .*timed out"):
        download(
            [server.url + "/slow"], tmp_path / "f", md5=MD5, timeout=0.3, progress=False
        )
    assert list(tmp_path.iterdir()) == []


def test_mirrors_are_tried_in_order_and_every_failure_is_listed(server, tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/f.gz"
    server.routes["/good.gz"] = ("ok", PAYLOAD)
    urls = [dead, server.url + "/missing.gz", server.url + "/good.gz"]
    dest = download(urls, tmp_path / "f.gz", md5=MD5, timeout=5, progress=False)
    assert dest.exists() and server.hits == ["/missing.gz", "/good.gz"]
    with pytest.raises(
        DownloadError, match=r"could not download g\.gz; every location failed"
    ) as info:
        download(urls[:2], tmp_path / "g.gz", md5=MD5, timeout=5, progress=False)
    text = str(info.value)
    assert f"{dead}: network error" in text
    assert f"{server.url}/missing.gz: HTTP 404" in text
    assert not (tmp_path / "g.gz").exists()


def test_download_needs_a_checksum(tmp_path):
    with pytest.raises(ValueError, match="download: expected md5= or gunzip_md5="):
        download("http://127.0.0.1:9/f", tmp_path / "f")


@pytest.mark.usefixtures("small_specs", "isolated")
def test_load_mnist_downloads_into_the_cache_once(server, tmp_path, monkeypatch):
    images, labels, raw_md5 = write_mnist_split(tmp_path / "served", "test")
    for stem in raw_md5:
        data = (tmp_path / "served" / (stem + ".gz")).read_bytes()
        server.routes[f"/mnist/{stem}.gz"] = ("ok", data)
    spec = dataclasses.replace(
        sources.MNIST, mirrors=(server.url + "/mnist/",), raw_md5=raw_md5
    )
    monkeypatch.setattr(sources, "MNIST", spec)
    monkeypatch.setattr(sources, "DOWNLOAD_TIMEOUT", 5.0)
    ds = load_mnist("test")
    cache = tmp_path / "xdg" / "cnnumpy" / "mnist"
    assert sorted(p.name for p in cache.iterdir()) == [
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    ]
    assert ds.checksum_ok is True and ds.source.startswith(str(cache))
    np.testing.assert_array_equal(ds.x[:, 0], images)
    np.testing.assert_array_equal(ds.y, labels)
    hits = len(server.hits)
    load_mnist("test")
    assert len(server.hits) == hits  # the second call reads the cache


@pytest.mark.usefixtures("small_specs", "isolated")
def test_load_mnist_failed_download_explains_and_leaves_nothing(
    server, tmp_path, monkeypatch
):
    write_mnist_split(tmp_path / "served", "test")
    name = "t10k-images-idx3-ubyte.gz"
    server.routes[f"/mnist/{name}"] = ("ok", (tmp_path / "served" / name).read_bytes())
    spec = dataclasses.replace(sources.MNIST, mirrors=(server.url + "/mnist/",))
    monkeypatch.setattr(sources, "MNIST", spec)  # official md5s: the bytes differ
    with pytest.raises(
        DatasetError, match=r"load_mnist: could not find the MNIST 'test' files"
    ) as info:
        load_mnist("test")
    text = str(info.value)
    assert "download into" in text and "checksum mismatch" in text
    assert "$CNNUMPY_DATA: not set" in text and "check the network" in text
    cache = tmp_path / "xdg" / "cnnumpy" / "mnist"
    assert list(cache.iterdir()) == []


@pytest.mark.usefixtures("small_specs", "isolated")
def test_load_cifar10_download_must_match(server, tmp_path, monkeypatch):
    write_cifar_tar(tmp_path / "served.tar.gz", cifar_members())
    archive = (tmp_path / "served.tar.gz").read_bytes()
    server.routes["/cifar.tar.gz"] = ("ok", archive)
    spec = dataclasses.replace(sources.CIFAR10, urls=(server.url + "/cifar.tar.gz",))
    monkeypatch.setattr(sources, "CIFAR10", spec)  # official md5: refused
    with pytest.raises(DatasetError, match="checksum mismatch"):
        load_cifar10("test")
    cache = tmp_path / "xdg" / "cnnumpy"
    assert list(cache.iterdir()) == []
    good = dataclasses.replace(spec, archive_md5=hashlib.md5(archive).hexdigest())
    monkeypatch.setattr(sources, "CIFAR10", good)
    with pytest.warns(UserWarning, match="differ from the official release"):
        ds = load_cifar10("test")  # batch md5s are not the official ones
    assert ds.x.shape == (4, 3, 32, 32) and ds.source == str(
        cache / "cifar-10-python.tar.gz"
    )


def test_without_tqdm_the_download_has_no_bar(server, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)  # import fails: no bar
    server.routes["/f.gz"] = ("ok", PAYLOAD)
    download(server.url + "/f.gz", tmp_path / "f.gz", md5=MD5, timeout=5)
    assert (tmp_path / "f.gz").exists() and capsys.readouterr().err == ""


# ------------------------------------ a deadline from connecting to the last byte


@pytest.fixture
def dripping_server():
    """URL of a raw server that sends ``prefix`` at once, then one byte of a status
    line and headers every 0.2 s: each read is within the client's timeout, the
    whole never ends. Set ``dripping_server.prefix``; bounded to 10 s."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()
    state = type("Drip", (), {"prefix": b""})

    def serve():
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=drip, args=(conn,), daemon=True).start()

    def drip(conn):
        with conn:
            conn.recv(65536)  # the request
            conn.sendall(state.prefix)
            for byte in b"X-Slow: " + b"a" * 50:
                if stop.wait(0.2):
                    return
                try:
                    conn.sendall(bytes([byte]))
                except OSError:
                    return  # the client gave up

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{listener.getsockname()[1]}/f.gz"
    yield state
    stop.set()
    thread.join()
    listener.close()


@pytest.mark.parametrize(
    "prefix, seen",
    [(b"", "status line"), (b"HTTP/1.0 200 OK\r\nContent-Length: 9\r\n", "headers")],
)
def test_dripped_status_line_and_headers_meet_the_deadline(
    dripping_server, tmp_path, prefix, seen
):
    dripping_server.prefix = prefix
    started = time.monotonic()
    with pytest.raises(
        DownloadError,
        match=r"too slow: the status line and headers were still incomplete",
    ) as info:
        download(
            dripping_server.url,
            tmp_path / "f.gz",
            md5=MD5,
            timeout=5,
            deadline=0.5,
            progress=False,
        )
    assert time.monotonic() - started < 1.5  # deadline + 1 s
    assert (
        f"{dripping_server.url}: too slow: the status line and headers were still "
        "incomplete after 0.5 s, the deadline for this file" in str(info.value)
    ), seen
    assert list(tmp_path.iterdir()) == []


# -------------------------------------------- part files left by a killed download


KILLED_DOWNLOAD = """
import sys
from cnnumpy.data import download
download(sys.argv[1], sys.argv[2], md5="0" * 32, timeout=30, progress=False)
"""


def _age(path, seconds=3600):
    """Make ``path`` look last written ``seconds`` ago."""
    then = time.time() - seconds
    os.utime(path, (then, then))


def _wait_for_part_file(folder, server, process, limit=10.0):
    """The part file, once the server has been asked for the file."""
    ends = time.monotonic() + limit
    while time.monotonic() < ends and process.poll() is None:
        parts = [p for p in folder.iterdir() if p.name.endswith(".part")]
        if parts and server.hits:
            return parts[0]
        time.sleep(0.02)
    raise AssertionError("the download never started")


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="POSIX signals")
def test_part_file_of_a_killed_download_is_removed_by_the_next(server, tmp_path):
    server.routes["/f.gz"] = ("hang", PAYLOAD)
    dest = tmp_path / "f.gz"
    process = subprocess.Popen(
        [sys.executable, "-c", KILLED_DOWNLOAD, server.url + "/f.gz", str(dest)]
    )
    try:
        part = _wait_for_part_file(tmp_path, server, process)
    finally:
        process.kill()  # SIGKILL: no cleanup can run
        process.wait()
    assert process.returncode == -signal.SIGKILL and part.exists()
    _age(part)  # killed long ago
    server.routes["/f.gz"] = ("ok", PAYLOAD)
    download(server.url + "/f.gz", dest, md5=MD5, timeout=5, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.gz"]


def test_only_stale_part_files_of_this_file_are_removed(server, tmp_path):
    names = {
        ".f.gz.abc_1234.part": False,  # ours, old, unlocked: stale
        ".f.gz.new12345.part": True,  # ours but just written
        ".g.gz.abc_1234.part": True,  # another file's
        ".f.gz.short.part": True,  # not a name mkstemp makes
        "f.gz.abc_1234.part": True,  # no leading dot: not ours
        ".f.gz.ABC_1234.part": True,  # mkstemp uses lower case only
    }
    for name in names:
        (tmp_path / name).write_bytes(b"partial")
        if name != ".f.gz.new12345.part":
            _age(tmp_path / name)
    server.routes["/f.gz"] = ("ok", PAYLOAD)
    download(server.url + "/f.gz", tmp_path / "f.gz", md5=MD5, progress=False)
    kept = {name for name, keep in names.items() if keep}
    assert {p.name for p in tmp_path.iterdir()} == kept | {"f.gz"}


@pytest.mark.skipif(partfiles.fcntl is None, reason="flock is POSIX")
def test_a_live_download_part_file_is_locked_and_kept(tmp_path):
    dest = tmp_path / "f.gz"
    fd, path, lock = partfiles.create(dest)
    os.close(fd)  # as after writing: the lock stays until release
    _age(path)  # a live download stalled for an hour
    assert partfiles.remove_stale(dest) == []
    assert os.path.exists(path)
    partfiles.release(lock)  # the download ended without removing it (killed)
    assert partfiles.remove_stale(dest) == [tmp_path / os.path.basename(path)]
    assert list(tmp_path.iterdir()) == []
