"""The playground's web application: ``make_app(runs_dir)`` and ``serve``.

    GET  /                          the single-page app (static/index.html)
    GET  /static/...                its scripts and style sheet
    GET  /api/runs                  the image runs under RUNS_DIR
    GET  /api/zoo                   what the Train page offers
                                    (``cnnumpy.serve.training_form``)
    POST /api/predict?run=NAME      image bytes -> top classes and the three maps
    POST /api/features?run=NAME     image bytes -> every layer's maps, the filters
    GET  /api/runs/NAME/history     a run's curves and final metrics
    /api/train...                   training (``cnnumpy.serve.training``)
    /api/step...                    inside one step (``cnnumpy.serve.step``)

A handler checks the query, reads the body within its limit, then computes in a
worker thread (``run_in_threadpool``), so that the event loop keeps answering other
requests (the training's event stream among them) while NumPy works. Errors are JSON
(``cnnumpy.serve.errors``). Requests that other sites make through the user's
browser are refused (``cnnumpy.serve.guard``). ``serve`` runs the app with uvicorn
and shuts it down cleanly: event streams closed, a running training stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from cnnumpy.cli.serve import is_loopback
from cnnumpy.serve import predict, step, training, training_form
from cnnumpy.serve.body import read_body
from cnnumpy.serve.errors import (
    ApiError,
    InternalErrors,
    api_error_handler,
    http_error_handler,
)
from cnnumpy.serve.guard import SameOrigin
from cnnumpy.serve.images import decode_upload
from cnnumpy.serve.query import flag_query, int_query, run_name
from cnnumpy.serve.store import RunStore, run_summaries

STATIC_DIR = Path(__file__).resolve().parent / "static"
MAX_TOP = 1000
GRACEFUL_SHUTDOWN = 2  # seconds the requests under way get at shutdown


# -- the handlers ----------------------------------------------------------------------
async def index(request: Request) -> FileResponse:
    page = request.app.state.static_dir / "index.html"
    if not page.is_file():
        raise ApiError(404, f"the page is missing ({page}): reinstall cnnumpy[serve]")
    return FileResponse(page)


async def list_runs(request: Request) -> JSONResponse:
    found = await run_in_threadpool(run_summaries, request.app.state.store)
    return JSONResponse({"runs": found})


async def zoo_choices(request: Request) -> JSONResponse:
    return JSONResponse(training_form.zoo_json())


async def predict_image(request: Request) -> JSONResponse:
    """``POST /api/predict?run=NAME[&maps=0][&top=5][&fit=0]``, image bytes."""
    store = request.app.state.store
    name = run_name(request)
    top = int_query(request, "top", 5, 1, MAX_TOP)
    with_maps = flag_query(request, "maps", True)
    fit = flag_query(request, "fit", None)
    store.folder(name)  # an unknown run is a 404 before the body is read
    body = await read_body(request)

    def work() -> dict:
        started = time.perf_counter()
        run = store.open(name)
        upload = decode_upload(body, run.input_shape, fit_digit=fit)
        decoded = time.perf_counter()
        answer = predict.predict_response(run, upload, top=top, with_maps=with_maps)
        answer["time_ms"]["decode"] = round((decoded - started) * 1000, 3)
        answer["time_ms"]["total"] = round((time.perf_counter() - started) * 1000, 3)
        return answer

    return JSONResponse(await run_in_threadpool(work))


async def features(request: Request) -> JSONResponse:
    """``POST /api/features?run=NAME[&fit=0]``, image bytes."""
    store = request.app.state.store
    name = run_name(request)
    fit = flag_query(request, "fit", None)
    store.folder(name)
    body = await read_body(request)

    def work() -> dict:
        run = store.open(name)
        upload = decode_upload(body, run.input_shape, fit_digit=fit)
        return predict.features_response(run, upload)

    return JSONResponse(await run_in_threadpool(work))


async def history(request: Request) -> JSONResponse:
    """``GET /api/runs/NAME/history``."""
    name = request.path_params["name"]
    folder = request.app.state.store.folder(name)
    answer = await run_in_threadpool(predict.history_response, name, folder)
    return JSONResponse(answer)


# -- the application -------------------------------------------------------------------
def make_app(
    runs_dir, *, static_dir: Path = STATIC_DIR, loopback_only: bool = False
) -> Starlette:
    """The playground for the run folders under ``runs_dir``.

    ``loopback_only``: the server listens on a loopback address only, so that a
    request naming another host is refused (``cnnumpy.serve.guard``).

    ``app.state.store`` is the ``RunStore`` every handler opens runs with,
    ``app.state.runs_dir`` the folder (training writes new runs into it). At the
    app's end (its lifespan's), the event streams close and a running training
    stops (``cnnumpy.serve.training.shutdown``).
    """
    routes = [
        Route("/", index),
        Route("/api/runs", list_runs),
        Route("/api/zoo", zoo_choices),
        Route("/api/predict", predict_image, methods=["POST"]),
        Route("/api/features", features, methods=["POST"]),
        Route("/api/runs/{name}/history", history),
        *training.routes,
        *step.routes,
        Mount("/static", StaticFiles(directory=static_dir, check_dir=False)),
    ]
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(InternalErrors),
            Middleware(SameOrigin, loopback_only=loopback_only),
        ],
        exception_handlers={
            ApiError: api_error_handler,
            HTTPException: http_error_handler,
        },
        lifespan=_lifespan,
    )
    app.state.runs_dir = Path(runs_dir)
    app.state.store = RunStore(app.state.runs_dir)
    app.state.static_dir = Path(static_dir)
    return app


@contextlib.asynccontextmanager
async def _lifespan(app: Starlette):
    yield
    stopped = await asyncio.to_thread(training.shutdown, app)
    if stopped is not None:  # the user may want to continue it
        print(f"cnnumpy playground: {stopped}", file=sys.stderr, flush=True)


def serve(runs_dir, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Run the playground with uvicorn until interrupted (Ctrl+C, SIGTERM).

    Open event streams end at once, other requests have :data:`GRACEFUL_SHUTDOWN`
    seconds to finish, then a running training is stopped (its last complete epoch
    kept). As uvicorn does, the signal is raised again once the server is down:
    Ctrl+C ends in ``KeyboardInterrupt``, SIGTERM ends the process.
    """
    import uvicorn

    class PlaygroundServer(uvicorn.Server):
        """uvicorn's server, which also sets the app's closing event on a signal:
        otherwise uvicorn waits for every response to end, an event stream's
        never does, and the server would wait for the browser tab to close."""

        def handle_exit(self, sig, frame) -> None:
            training.closing_event(self.config.app).set()
            super().handle_exit(sig, frame)

    app = make_app(runs_dir, loopback_only=is_loopback(host))
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN,
    )
    PlaygroundServer(config).run()
