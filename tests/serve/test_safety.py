"""What the playground does against a client that means harm or misbehaves: other
sites posting through the user's browser, a site whose name points at 127.0.0.1, a
body that never ends, a client gone mid-upload. After each, the server serves.

No run is needed: the training's endpoints answer without one.
"""

from __future__ import annotations

import socket
import time

import anyio
import pytest

pytest.importorskip("starlette")
httpx2 = pytest.importorskip("httpx2")

from starlette.requests import ClientDisconnect  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402

from cnnumpy.serve import body, make_app  # noqa: E402
from cnnumpy.serve.errors import ApiError, InternalErrors  # noqa: E402
from cnnumpy.serve.guard import host_name, is_loopback_name  # noqa: E402
from tests.serve.live import live_server  # noqa: E402

EVIL = "http://evil.example"


@pytest.fixture
def client(tmp_path):
    with TestClient(make_app(tmp_path / "runs")) as test_client:
        yield test_client


def assert_error(answer, status: int, *words: str) -> None:
    assert answer.status_code == status, answer.text[:300]
    message = answer.json()["error"]
    for word in words:
        assert word in message, message


# -- other sites -----------------------------------------------------------------------
@pytest.mark.parametrize(
    "path", ["/api/train", "/api/train/stop", "/api/predict?run=x", "/api/step?run=x"]
)
@pytest.mark.parametrize("origin", [EVIL, "http://testserver:8080", "null"])
def test_a_post_from_another_site_is_403(client, path, origin):
    answer = client.post(path, content=b"{}", headers={"Origin": origin})
    assert_error(answer, 403, "refused", origin, "http://testserver")
    assert client.get("/api/train/status").json()["state"] == "idle"


def test_the_page_s_own_posts_and_every_get_are_served(client):
    own = client.post("/api/train/stop", headers={"Origin": "http://testserver"})
    assert_error(own, 409, "no training is running")  # past the guard
    plain = client.post("/api/train/stop")  # curl, scripts: no Origin
    assert_error(plain, 409, "no training is running")
    for path in ("/api/runs", "/api/zoo", "/api/train/status", "/"):
        assert client.get(path, headers={"Origin": EVIL}).status_code == 200, path


@pytest.mark.parametrize(
    "host, served",
    [("127.0.0.1:8000", True), ("localhost:8000", True), ("[::1]:8000", True),
     ("127.0.0.2", True), ("LOCALHOST", True), ("app.localhost:8000", True),
     ("evil.example", False), ("evil.example:8000", False),
     ("127.0.0.1.evil.example", False), ("192.168.1.20:8000", False)],
)  # fmt: skip
def test_a_loopback_server_answers_only_to_loopback_names(tmp_path, host, served):
    """DNS rebinding: a site whose name the attacker points at 127.0.0.1."""
    app = make_app(tmp_path / "runs", loopback_only=True)
    with TestClient(app, base_url="http://127.0.0.1:8000") as local:
        answer = local.get("/api/train/status", headers={"Host": host})
        if served:
            assert answer.status_code == 200, answer.text
        else:
            assert_error(answer, 403, "this machine only", repr(host))
        assert local.get("/api/train/status").status_code == 200


def test_a_server_open_to_the_network_answers_any_name(client):
    answer = client.get("/api/train/status", headers={"Host": "teacher-laptop:8000"})
    assert answer.status_code == 200


def test_host_names():
    assert host_name("[::1]:8000") == "::1" and host_name("127.0.0.1:80") == "127.0.0.1"
    assert host_name("localhost") == "localhost" and host_name("::1") == "::1"
    assert is_loopback_name("[::1]") and not is_loopback_name("[::2]:80")


# -- bodies ----------------------------------------------------------------------------
class StalledRequest:
    """A request whose client sends 4 bytes, then nothing."""

    headers: dict = {}

    async def stream(self):
        yield b"\x89PNG"
        await anyio.sleep(60)
        yield b"never"


def test_a_body_that_stops_coming_is_408(monkeypatch):
    monkeypatch.setattr(body, "BODY_TIMEOUT", 0.2)
    started = time.monotonic()
    with pytest.raises(ApiError) as caught:
        anyio.run(body.read_body, StalledRequest())
    assert time.monotonic() - started < 5
    assert caught.value.status == 408
    assert "more than 0.2 s" in caught.value.message
    assert "4 bytes came" in caught.value.message


def test_stalled_bodies_hold_no_other_request_and_end_in_408(tmp_path, monkeypatch):
    """Slow loris: 20 connections that never finish their body. The server answers
    the others at once, and ends each stalled one with a 408."""
    monkeypatch.setattr(body, "BODY_TIMEOUT", 1.0)
    with live_server(make_app(tmp_path / "runs")) as url:
        port = int(url.rsplit(":", 1)[1])
        stalled = []
        for k in range(20):
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            head = "POST /api/train HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            if k % 2:  # a length it never reaches
                head += "Content-Length: 999\r\n\r\n{"
            else:  # chunks that never end
                head += "Transfer-Encoding: chunked\r\n\r\n1\r\n{\r\n"
            sock.sendall(head.encode())
            stalled.append(sock)
        started = time.monotonic()
        status = httpx2.get(f"{url}/api/train/status", timeout=10)
        assert status.status_code == 200 and time.monotonic() - started < 0.5
        try:
            for sock in stalled:
                answer = sock.recv(4096).decode("latin-1")
                assert answer.startswith("HTTP/1.1 408"), answer
        finally:
            for sock in stalled:
                sock.close()
        assert httpx2.get(f"{url}/api/train/status", timeout=10).status_code == 200


def test_a_client_gone_mid_upload_is_no_error(capsys):
    """Nobody is left to answer: no 500 sent, no traceback in the server's log."""

    async def app(scope, receive, send):
        raise ClientDisconnect()

    sent = []

    async def send(message):
        sent.append(message)

    anyio.run(InternalErrors(app), {"type": "http"}, None, send)
    assert sent == [] and capsys.readouterr().err == ""


# -- event streams ---------------------------------------------------------------------
def test_an_event_stream_ends_when_its_client_goes(tmp_path, monkeypatch):
    """Closed tabs leave no stream behind polling the job for ever."""
    from cnnumpy.serve import training

    open_streams = []
    stream = training._stream

    async def counted(*args):
        open_streams.append(1)
        try:
            async for part in stream(*args):
                yield part
        finally:
            open_streams.pop()

    monkeypatch.setattr(training, "_stream", counted)
    with live_server(make_app(tmp_path / "runs")) as url:
        port = int(url.rsplit(":", 1)[1])
        clients = []
        for _ in range(5):
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            sock.sendall(b"GET /api/train/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            received = b""
            while b"event: state" not in received:  # the headers may come alone
                chunk = sock.recv(4096)
                assert chunk, received
                received += chunk
            clients.append(sock)
        assert len(open_streams) == 5
        for sock in clients:
            sock.close()
        deadline = time.monotonic() + 5
        while open_streams and time.monotonic() < deadline:
            time.sleep(0.05)
        assert open_streams == []
