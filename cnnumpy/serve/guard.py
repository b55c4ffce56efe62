"""Requests that other web sites make through the user's browser, refused.

The playground has no login: whoever reaches it may start trainings. A page of any
other site the user opens could reach it too, through the user's own browser:

- a cross-site ``POST`` (a form, or ``fetch`` with a "simple" content type, which
  sends no preflight) would start or stop a training, write run folders, or load
  the server with uploads. Browsers name the page that sends a ``POST`` in its
  ``Origin`` header; a ``POST`` whose origin is not the address it was sent to
  (its ``Host`` header) is refused with 403.
- DNS rebinding: a site whose name the attacker points at 127.0.0.1 is, to the
  browser, the same origin as the playground. When the server listens on a
  loopback address only (the default), a request whose ``Host`` is not a loopback
  name (``localhost``, ``127.x.x.x``, ``[::1]``) is refused with 403.

Scripts and tests that send no ``Origin`` (curl, the test client) are served.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from cnnumpy.cli.serve import is_loopback
from cnnumpy.serve.errors import error_response

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def host_name(host: str) -> str:
    """The name in a ``Host`` header, without its port: ``[::1]:8000`` -> ``::1``."""
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host[1:]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def is_loopback_name(host: str) -> bool:
    """True for a ``Host`` naming this machine: ``localhost`` (and the names under
    it, which browsers resolve to it themselves) or a loopback address."""
    name = host_name(host).lower()
    return name.endswith(".localhost") or (bool(name) and is_loopback(name))


class SameOrigin:
    """ASGI middleware: 403 for a cross-site ``POST`` and, with ``loopback_only``,
    for any request whose ``Host`` is not a loopback name (module docstring).

    Args:
        app: the application it guards.
        loopback_only: the server listens on a loopback address only.
    """

    def __init__(self, app: ASGIApp, loopback_only: bool = False) -> None:
        self.app = app
        self.loopback_only = loopback_only

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            refusal = self.refusal(scope)
            if refusal is not None:
                await error_response(403, refusal)(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def refusal(self, scope: Scope) -> str | None:
        """Why the request is refused, or None."""
        headers = dict(scope["headers"])
        host = headers.get(b"host", b"").decode("latin-1")
        if self.loopback_only and not is_loopback_name(host):
            return (
                f"Host {host[:80]!r}: this playground listens on this machine only "
                "and answers to localhost or 127.0.0.1 (a site whose name points "
                "here is refused)"
            )
        origin = headers.get(b"origin", b"").decode("latin-1")
        if scope["method"] in SAFE_METHODS or not origin:
            return None
        if urlsplit(origin).netloc.lower() != host.lower():
            return (
                f"a {scope['method']} from the page of {origin[:80]!r} is refused: "
                f"only the playground's own page (http://{host[:80]}) may send one"
            )
        return None
