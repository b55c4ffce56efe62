"""The query string of a playground request, read once for every route.

``?run=NAME`` is required where a run is computed on; numbers and flags have a
range and a default. A bad value is a 400 that starts with the parameter's name and
says what was expected and what came (``layer: expected a layer index from 0 to 7,
got ?layer=12``).
"""

from __future__ import annotations

from starlette.requests import Request

from cnnumpy.serve.errors import ApiError


def run_name(request: Request) -> str:
    """``?run=NAME``, required (whether such a run exists is the store's to say)."""
    name = request.query_params.get("run")
    if not name:
        raise ApiError(
            400, "missing ?run=NAME: the name of a run (GET /api/runs lists them)"
        )
    return name


def int_query(
    request: Request, key: str, default, low: int, high: int, what: str = "an integer"
):
    """``?key=N``, an integer from ``low`` to ``high`` (both included); ``default``
    when absent."""
    raw = request.query_params.get(key)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        raise ApiError(
            400, f"{key}: expected {what} from {low} to {high}, got ?{key}={raw[:40]}"
        )
    return value


def flag_query(request: Request, key: str, default: bool | None) -> bool | None:
    """``?key=1`` or ``?key=0`` (also true/false, yes/no); ``default`` when absent."""
    raw = request.query_params.get(key)
    if raw is None:
        return default
    word = raw.lower()
    if word in ("1", "true", "yes"):
        return True
    if word in ("0", "false", "no"):
        return False
    raise ApiError(400, f"{key}: expected 1 or 0, got ?{key}={raw[:40]}")
