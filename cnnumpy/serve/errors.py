"""How the playground answers when something goes wrong: always JSON, never a crash.

Every error is ``{"error": "<one line>"}`` with an HTTP status:

- ``ApiError(status, message)``, raised anywhere in a handler (a bad upload: 400, too
  large: 413, an unknown run: 404, a training already running: 409), becomes that
  status and that message;
- the router's own refusals (no such page: 404, wrong method: 405) keep their
  status, in the same JSON form;
- any other exception is a bug or a broken file on the server's side: 500
  ``{"error": "internal error: <type>: <message>"}``, its traceback on stderr, and
  the server goes on serving the next request;
- a client that goes away before its request is read (a tab closed during an
  upload) gets no answer, and leaves no traceback on the server's stderr.
"""

from __future__ import annotations

import sys
import traceback

from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class ApiError(Exception):
    """A request the server refuses, with the HTTP status and the reason.

    Args:
        status: the HTTP status code (400, 404, 409, 413, ...).
        message: one line for the user, naming what was expected and what came.
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = int(status)
        self.message = message

    def __repr__(self) -> str:
        return f"ApiError({self.status}, {self.message!r})"


def error_response(status: int, message: str) -> JSONResponse:
    """``{"error": message}`` with ``status``."""
    return JSONResponse({"error": message}, status_code=status)


async def api_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """Starlette's handler for ``ApiError``: its status and its message."""
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.message)


async def http_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """The router's 404 and 405 (and any ``HTTPException``) as JSON errors."""
    assert isinstance(exc, HTTPException)
    headers = getattr(exc, "headers", None)  # 405 lists the allowed methods
    response = error_response(exc.status_code, str(exc.detail))
    if headers:
        response.headers.update(headers)
    return response


def internal_message(exc: BaseException) -> str:
    """``internal error: ValueError: <message>`` on one line."""
    detail = " ".join(str(exc).split())
    return f"internal error: {type(exc).__name__}: {detail}".rstrip(": ")


class InternalErrors:
    """ASGI middleware: an exception no handler caught becomes a 500 JSON answer.

    Why not Starlette's ``exception_handlers={Exception: ...}``: its outermost layer
    sends that answer and then raises the exception again (for the server's log), so
    a test client sees a crash. Here the traceback goes to stderr and the exception
    stops. Once an answer has started (a stream of server-sent events) no other can
    be sent: the exception then goes on to the server, which closes that connection
    only. A client gone before its body was read is no error of the server: nobody
    is left to answer, and a traceback per closed tab would flood the log.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_and_note(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        except ClientDisconnect:
            return
        except Exception as exc:
            if started:
                raise
            traceback.print_exc(file=sys.stderr)
            response = error_response(500, internal_message(exc))
            await response(scope, receive, send)
