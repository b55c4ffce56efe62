"""tiny_shakespeare: found, or downloaded and verified, never used unverified.

No test touches the internet: a small fake corpus is served from 127.0.0.1 (the
server of ``test_data_download``) with the URL, size and sha256 of
``sources.TINY_SHAKESPEARE`` replaced by its own; the cache is a fresh folder.
"""

import dataclasses
import hashlib
import socket

import pytest
from test_data import isolated  # noqa: F401
from test_data_download import server  # noqa: F401

from cnnumpy.data import DatasetError, sources, tiny_shakespeare

LINES = (
    "First Citizen:\nBefore we proceed any further, hear me speak.\n\n"
    "All:\nSpeak, speak.\n\n"
    "First Citizen:\nYou are all resolved rather to die than to famish?\n\n"
)
FAKE = (LINES * 40).encode("utf-8")  # about 5,000 characters


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def dead_url() -> str:
    """A URL on a port nobody listens on: the connection is refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/input.txt"


def pin(monkeypatch, url: str, data: bytes = FAKE) -> sources.TextSpec:
    """Make ``url``, with the size and sha256 of ``data``, the official corpus."""
    spec = dataclasses.replace(
        sources.TINY_SHAKESPEARE, urls=(url,), size=len(data), sha256=sha256(data)
    )
    monkeypatch.setattr(sources, "TINY_SHAKESPEARE", spec)
    monkeypatch.setattr(sources, "DOWNLOAD_TIMEOUT", 5.0)
    return spec


@pytest.fixture
def served(server, isolated, monkeypatch):
    """The fake corpus served at ``server.url/input.txt`` and pinned as official;
    an empty cache under tmp_path. Returns the server."""
    server.routes["/input.txt"] = ("ok", FAKE)
    pin(monkeypatch, server.url + "/input.txt")
    return server


def cached(tmp_path):
    return tmp_path / "xdg" / "cnnumpy" / "tiny-shakespeare"


def test_the_pinned_url_size_and_sha256_are_tensorflow_datasets_ones():
    spec = sources.TINY_SHAKESPEARE
    assert spec.urls == (
        "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/"
        "tinyshakespeare/input.txt",
    )
    assert spec.size == 1115394
    assert spec.sha256 == (
        "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
    )


def test_download_then_read_then_read_the_cache_without_network(
    served, tmp_path, monkeypatch
):
    assert tiny_shakespeare() == FAKE.decode("utf-8")
    assert served.hits == ["/input.txt"]
    assert sorted(p.name for p in cached(tmp_path).iterdir()) == ["input.txt"]
    pin(monkeypatch, dead_url())  # the network is gone; the copy stays official
    assert tiny_shakespeare() == FAKE.decode("utf-8")
    assert served.hits == ["/input.txt"]


@pytest.mark.parametrize(
    ("served_bytes", "error"),
    [
        (FAKE.replace(b"famish", b"fam1sh"), "checksum mismatch: got sha256 {got}"),
        (FAKE[:-10], "checksum mismatch: got sha256 {got}"),
        (FAKE + b"more", f"announces {len(FAKE) + 4:,} bytes, at most {len(FAKE):,}"),
    ],
    ids=["changed", "short", "long"],
)
def test_a_wrong_download_is_refused_and_not_kept(
    served, tmp_path, served_bytes, error
):
    served.routes["/input.txt"] = ("ok", served_bytes)
    with pytest.raises(DatasetError, match="could not find tiny Shakespeare") as info:
        tiny_shakespeare()
    text = str(info.value)
    assert error.format(got=sha256(served_bytes)) in text
    if "checksum" in error:
        assert f"expected {sha256(FAKE)}" in text
    assert list(cached(tmp_path).iterdir()) == []  # no input.txt, no part file
    served.routes["/input.txt"] = ("ok", FAKE)  # the next call downloads again
    assert tiny_shakespeare() == FAKE.decode("utf-8")


def test_offline_names_the_url_and_where_to_put_the_file(isolated, monkeypatch):
    url = dead_url()
    spec = pin(monkeypatch, url)
    with pytest.raises(DatasetError) as info:
        tiny_shakespeare()
    text = str(info.value)
    target = cached(isolated) / "input.txt"
    assert text.startswith("tiny_shakespeare: could not find tiny Shakespeare")
    assert f"{url}: network error" in text
    assert f"By hand: save {url} ({spec.size:,} bytes, sha256 {spec.sha256})" in text
    assert text.endswith(f"as {target}.")
    assert not target.exists()


def test_a_wrong_copy_in_the_cache_is_refused_without_download(served, tmp_path):
    bad = FAKE.replace(b"Speak", b"Spake")
    cached(tmp_path).mkdir(parents=True)
    (cached(tmp_path) / "input.txt").write_bytes(bad)
    match = (
        rf"input\.txt: not the official tiny Shakespeare: expected {len(FAKE):,} "
        rf"bytes with sha256 {sha256(FAKE)}, got {len(bad):,} bytes with sha256 "
        rf"{sha256(bad)}; delete or replace the file"
    )
    with pytest.raises(DatasetError, match=match):
        tiny_shakespeare()
    assert served.hits == []
    (cached(tmp_path) / "input.txt").write_bytes(FAKE + b"!")
    with pytest.raises(DatasetError, match=f"got {len(FAKE) + 1:,} bytes;"):
        tiny_shakespeare()


@pytest.mark.parametrize("where", ["file", "folder", "subfolder", "$CNNUMPY_DATA"])
def test_a_copy_put_by_hand_is_found_and_nothing_downloaded(
    served, tmp_path, monkeypatch, where
):
    folder = tmp_path / "mine"
    if where in ("subfolder", "$CNNUMPY_DATA"):
        folder = folder / "tinyshakespeare"  # char-rnn's name is accepted too
    folder.mkdir(parents=True)
    (folder / "input.txt").write_bytes(FAKE)
    path = {
        "file": folder / "input.txt",
        "folder": folder,
        "subfolder": tmp_path / "mine",
    }.get(where)
    if where == "$CNNUMPY_DATA":
        monkeypatch.setenv("CNNUMPY_DATA", str(tmp_path / "mine"))
    assert tiny_shakespeare(path) == FAKE.decode("utf-8")
    assert served.hits == [] and not cached(tmp_path).exists()


def test_path_or_no_download_searches_only_and_says_how_to_fix(served, tmp_path):
    with pytest.raises(DatasetError, match="allow download=True") as info:
        tiny_shakespeare(download=False)
    assert "By hand: save" in str(info.value)
    with pytest.raises(DatasetError, match=r"path= .*(no such folder)"):
        tiny_shakespeare(tmp_path / "nowhere")
    assert served.hits == [] and not cached(tmp_path).exists()
