"""A request's body, read within limits of size and time.

Every handler that takes a body (an image, the training form) reads it with
``read_body``, which guards the server against a client that would hurt it:

- past ``limit`` bytes the reading stops with 413, whatever the ``Content-Length``
  header claims (a client may send none, chunked, or lie); a declared length over
  the limit is refused before any byte is read;
- a body that has not arrived whole after :data:`BODY_TIMEOUT` seconds (a client
  that trickles bytes, or stops sending, "slow loris") is refused with 408, so
  that no connection is held open for ever. Other requests are served meanwhile
  in any case: the server reads every connection without blocking the others.
"""

from __future__ import annotations

import anyio

from cnnumpy.serve.errors import ApiError

MAX_UPLOAD_BYTES = 5 * 2**20
# 5 MB in 60 s is 85 KB/s, slower than any network a class works on
BODY_TIMEOUT = 60.0


async def read_body(request, limit: int = MAX_UPLOAD_BYTES) -> bytes:
    """The request body, read chunk by chunk.

    Raises:
        ApiError: 413 past ``limit`` bytes, 408 when the body takes more than
            :data:`BODY_TIMEOUT` seconds.
    """
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ApiError(413, too_large(limit, f"{int(declared):,} bytes"))
    chunks, total = [], 0
    try:
        with anyio.fail_after(BODY_TIMEOUT):
            async for chunk in request.stream():
                total += len(chunk)
                if total > limit:
                    raise ApiError(413, too_large(limit, f"more than {limit:,} bytes"))
                chunks.append(chunk)
    except TimeoutError:
        raise ApiError(
            408,
            f"the request body took more than {BODY_TIMEOUT:g} s to arrive "
            f"({total:,} bytes came); expected the whole body at once",
        ) from None
    return b"".join(chunks)


def too_large(limit: int, received: str) -> str:
    """The message of a 413: the limit, and what was received."""
    return (
        f"the upload is too large: at most {limit:,} bytes "
        f"({limit / 2**20:g} MB), got {received}"
    )
