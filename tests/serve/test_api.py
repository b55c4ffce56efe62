"""The playground's JSON API through Starlette's test client: the shapes and values of
every answer, and every bad input (unknown or crafted run names, uploads too large,
not images, too many pixels, empty, truncated), after each of which the server must
still answer.

A LeNet-5 run folder is trained once for the module by ``cnnumpy train`` on the
offline MNIST sample (2,000 digits, 2 epochs: about two seconds).
"""

import io
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("starlette")
pytest.importorskip("httpx2")  # what Starlette's test client uses
from starlette.testclient import TestClient  # noqa: E402

from cnnumpy.cli import main, runs  # noqa: E402
from cnnumpy.serve import images, make_app, predict  # noqa: E402
from cnnumpy.serve.store import RunStore  # noqa: E402
from cnnumpy.visualize.maps import feature_maps_array  # noqa: E402

RUN = "lenet5"
EPOCHS = 2
TRAIN = [
    "train", "--model", "lenet5", "--dataset", "mnist-sample", "--epochs", EPOCHS,
    "--limit", "2000", "--batch-size", "32", "--lr", "0.1", "--seed", "0",
    "--quiet", "--no-report",
]  # fmt: skip


# -- fixtures --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory) -> Path:
    """RUNS_DIR with one trained LeNet-5 run; beside it (outside), another run that
    no request may reach."""
    root = tmp_path_factory.mktemp("serve")
    folder = root / "runs"
    argv = [*TRAIN, "--out", folder / RUN]
    assert main([str(a) for a in argv]) == 0
    outside = root / "outside"
    outside.mkdir()
    for name in (runs.MODEL, runs.CONFIG):
        (outside / name).write_bytes((folder / RUN / name).read_bytes())
    return folder


@pytest.fixture(scope="module")
def client(runs_dir) -> TestClient:
    return TestClient(make_app(runs_dir))


@pytest.fixture(scope="module")
def model(runs_dir):
    loaded, config, _ = runs.open_run(str(runs_dir / RUN))
    return loaded, config


@pytest.fixture(scope="module")
def mnist_test():
    """The first 20 digits of the sample's test part: uint8 ``(N, 1, 28, 28)``."""
    ds = runs.load_split("mnist-sample", "test", None)
    return ds.x[:20], ds.y[:20]


def png(pixels: np.ndarray, mode: str | None = None) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels, mode).save(buf, "PNG")
    return buf.getvalue()


def drawn_seven(size: int = 280, shift: tuple[int, int] = (0, 0)) -> np.ndarray:
    """A "7" in white strokes on black, as the page's canvas draws it."""
    canvas = np.zeros((size, size), dtype=np.uint8)
    s = size // 28
    r, c = 6 * s + shift[0], 8 * s + shift[1]
    canvas[r : r + 2 * s, c : c + 12 * s] = 255  # the bar
    for k in range(14 * s):  # the slanted stroke, from the bar's right end down-left
        row, col = r + 2 * s + k, c + 12 * s - 2 * s - k // 3
        canvas[row, col : col + 2 * s] = 255
    return canvas


def assert_still_serving(client: TestClient) -> None:
    answer = client.get("/api/runs")
    assert answer.status_code == 200
    assert [run["name"] for run in answer.json()["runs"]] == [RUN]


def assert_error(answer, status: int, *words: str) -> None:
    assert answer.status_code == status, answer.text[:300]
    message = answer.json()["error"]
    for word in words:
        assert word in message, message


def map_array(m: dict) -> np.ndarray:
    values = np.asarray(m["data"], dtype=np.float64)
    assert values.size == np.prod(m["shape"])
    return values.reshape(m["shape"])


# -- the lists -------------------------------------------------------------------------
def test_runs_lists_the_image_run_with_its_metrics(client, runs_dir):
    (runs_dir / "notes").mkdir()  # a folder without a run is not listed
    answer = client.get("/api/runs")
    assert answer.status_code == 200
    [run] = answer.json()["runs"]
    metrics = json.loads((runs_dir / RUN / runs.METRICS).read_text())
    assert run["name"] == RUN and run["model"] == "lenet5"
    assert run["dataset"] == "mnist-sample" and run["kind"] == "image"
    assert run["input_shape"] == [1, 28, 28]
    assert run["class_names"] == [str(d) for d in range(10)]
    assert run["epochs"] == EPOCHS
    assert run["test_accuracy"] == pytest.approx(metrics["test_accuracy"])


def test_runs_leave_out_char_models_and_unsafe_names(client, runs_dir, tmp_path):
    char = runs_dir / "char"
    char.mkdir()
    config = {"model": "char_rnn", "text": "stdlib", "input_shape": [25, 65]}
    (char / runs.CONFIG).write_text(json.dumps(config))
    (char / runs.MODEL).write_bytes((runs_dir / RUN / runs.MODEL).read_bytes())
    hidden = runs_dir / ".hidden"
    hidden.mkdir()
    for name in (runs.MODEL, runs.CONFIG):
        (hidden / name).write_bytes((runs_dir / RUN / name).read_bytes())
    try:
        assert [r["name"] for r in client.get("/api/runs").json()["runs"]] == [RUN]
        assert_error(client.get("/api/runs/.hidden/history"), 404, "no run named")
        answer = client.post("/api/predict?run=char", content=png(drawn_seven()))
        assert_error(answer, 400, "char model", "not images")
    finally:
        for folder in (char, hidden):
            for name in (runs.MODEL, runs.CONFIG):
                (folder / name).unlink()
            folder.rmdir()


def test_zoo_offers_the_models_made_for_the_data_sets(client):
    zoo = client.get("/api/zoo").json()
    assert {"lenet5", "lenet1", "mnist_cnn", "resnet20"} <= set(zoo["models"])
    assert not {"vgg16", "alexnet", "char_rnn", "char_lstm"} & set(zoo["models"])
    assert {"mnist", "fashion-mnist", "cifar10"} <= set(zoo["datasets"])
    assert "sgd" in zoo["optimizers"] and "adam" in zoo["optimizers"]
    assert zoo["defaults"]["model"] in zoo["models"]
    assert zoo["defaults"]["dataset"] in zoo["datasets"]
    assert zoo["model_inputs"]["resnet20"] == zoo["dataset_inputs"]["cifar10"]


# -- predict ---------------------------------------------------------------------------
def test_predict_answers_probabilities_and_maps_of_the_input_shape(client):
    answer = client.post(f"/api/predict?run={RUN}&top=10", content=png(drawn_seven()))
    assert answer.status_code == 200, answer.text[:300]
    body = answer.json()
    probs = [row["probability"] for row in body["top"]]
    assert len(probs) == 10 and sorted(probs, reverse=True) == probs
    assert sum(probs) == pytest.approx(1.0, abs=1e-5)
    assert {row["class"] for row in body["top"]} == {str(d) for d in range(10)}
    assert body["top"][0]["class"] == str(body["label"])
    assert body["inverted"] is False
    seen = map_array(body["input"])
    assert seen.shape == (28, 28) and 0 <= seen.min() and seen.max() <= 255
    for name in ("occlusion", "saliency", "grad_cam"):
        values = map_array(body["maps"][name])
        assert values.shape == (28, 28), name
        assert body["maps"][name]["min"] == pytest.approx(values.min(), rel=1e-3)
        assert body["maps"][name]["max"] == pytest.approx(values.max(), rel=1e-3)
    for name in ("saliency", "grad_cam"):  # normalised by their maximum
        values = map_array(body["maps"][name])
        assert values.min() >= 0 and values.max() == pytest.approx(1.0, abs=1e-3)
    assert set(body["time_ms"]) >= {"predict", "maps"}


def test_predict_top_and_no_maps(client):
    answer = client.post(
        f"/api/predict?run={RUN}&top=3&maps=0", content=png(drawn_seven())
    )
    body = answer.json()
    assert len(body["top"]) == 3 and body["maps"] is None


def test_predict_matches_model_predict_on_real_mnist_digits(client, model, mnist_test):
    """Without fitting (a real MNIST digit is fitted already), the probabilities are
    ``model.predict``'s on the run's preprocessing; with it, the top class holds for
    the digits the model is sure of."""
    net, config = model
    x, y = mnist_test
    expected = net.predict(runs.model_input(x, net, config, RUN))
    sure = 0
    for digit, want in zip(x, expected, strict=True):
        body = client.post(
            f"/api/predict?run={RUN}&top=10&maps=0&fit=0", content=png(digit[0])
        ).json()
        got = np.zeros(10)
        for row in body["top"]:
            got[int(row["class"])] = row["probability"]
        np.testing.assert_allclose(got, want, atol=1e-5)
        assert body["label"] == int(np.argmax(want))
        if want.max() > 0.95:
            fitted = client.post(
                f"/api/predict?run={RUN}&maps=0", content=png(digit[0])
            ).json()
            assert fitted["label"] == int(np.argmax(want))
            sure += 1
    assert sure >= 5  # the check above ran on enough digits
    assert np.mean(expected.argmax(axis=1) == y) >= 0.7  # the model is trained


def test_predict_reads_a_drawn_seven_as_the_model_reads_it(client, model):
    """The fitted drawing, preprocessed, gives ``model.predict``'s probabilities."""
    net, config = model
    body = client.post(
        f"/api/predict?run={RUN}&top=10&maps=0", content=png(drawn_seven())
    ).json()
    seen = map_array(body["input"]).astype(np.float32)[None, None]
    want = net.predict(runs.model_input(seen, net, config, RUN))[0]
    got = {row["class"]: row["probability"] for row in body["top"]}
    # the input map is rounded to 4 digits: the probabilities to about 1e-3
    np.testing.assert_allclose([got[str(d)] for d in range(10)], want, atol=2e-3)


def test_predict_inverts_dark_ink_on_white_paper(client):
    white_on_black = client.post(
        f"/api/predict?run={RUN}&maps=0", content=png(drawn_seven())
    )
    dark_on_white = client.post(
        f"/api/predict?run={RUN}&maps=0", content=png(255 - drawn_seven())
    )
    assert dark_on_white.json()["inverted"] is True
    np.testing.assert_allclose(
        map_array(dark_on_white.json()["input"]),
        map_array(white_on_black.json()["input"]),
        atol=1.0,
    )


def test_predict_takes_jpeg_and_transparent_png(client):
    seven = drawn_seven()
    buf = io.BytesIO()
    Image.fromarray(seven).save(buf, "JPEG", quality=95)
    assert (
        client.post(f"/api/predict?run={RUN}", content=buf.getvalue()).status_code
        == 200
    )
    rgba = np.zeros((*seven.shape, 4), dtype=np.uint8)
    rgba[..., :3], rgba[..., 3] = 255, seven  # white ink, transparent elsewhere
    opaque = client.post(f"/api/predict?run={RUN}&maps=0", content=png(seven)).json()
    clear = client.post(f"/api/predict?run={RUN}&maps=0", content=png(rgba)).json()
    assert clear["inverted"] is False
    np.testing.assert_allclose(
        map_array(clear["input"]), map_array(opaque["input"]), atol=1.0
    )


def test_predict_is_the_same_from_several_threads(client, runs_dir):
    """Requests on one model at once are served one after the other (its lock): a
    layer's forward values are not mixed between them. (Without the lock, a layer's
    backward pass may meet another request's batch of occluded copies and fail.)"""
    bodies = [png(drawn_seven(shift=(k, -k))) for k in range(-20, 20, 4)]
    url = f"/api/predict?run={RUN}&top=10"
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda b: client.post(url, content=b).json(), bodies))
    run = RunStore(runs_dir).open(RUN)
    uploads = [images.decode_upload(b, run.input_shape) for b in bodies]
    alone = [predict.predict_response(run, u, top=10) for u in uploads]
    with ThreadPoolExecutor(8) as pool:
        direct = list(
            pool.map(lambda u: predict.predict_response(run, u, top=10), uploads * 4)
        )
    for a, b in zip(alone * 4, direct, strict=True):
        assert a["top"] == b["top"] and a["maps"] == b["maps"]
    for a, b in zip(alone, together, strict=True):
        assert a["top"] == b["top"] and a["maps"] == b["maps"]


def test_predict_server_time_is_small(client):
    """Predict and the three maps of a drawn digit: the issue asks < 50 ms here; the
    bound below leaves room for a loaded test machine."""
    url = f"/api/predict?run={RUN}"
    times = [
        client.post(url, content=png(drawn_seven())).json()["time_ms"] for _ in range(7)
    ]
    work = sorted(t["predict"] + t["maps"] for t in times)
    assert work[len(work) // 2] < 250, times


# -- features and history --------------------------------------------------------------
def test_features_give_every_layer_and_the_filters(client, model):
    net, config = model
    answer = client.post(f"/api/features?run={RUN}", content=png(drawn_seven()))
    assert answer.status_code == 200, answer.text[:300]
    body = answer.json()
    assert [layer["index"] for layer in body["layers"]] == list(range(len(net.layers)))
    first = body["layers"][0]
    assert first["type"] == "Conv2D" and first["shape"] == [6, 24, 24]
    assert len(first["maps"]) == 6 and first["truncated"] is False
    assert all(m["shape"] == [24, 24] for m in first["maps"])
    flat = body["layers"][-1]
    assert flat["type"] == "Dense" and [m["shape"] for m in flat["maps"]] == [[1, 10]]
    predicted = client.post(
        f"/api/predict?run={RUN}&maps=0", content=png(drawn_seven())
    ).json()
    seen = map_array(predicted["input"]).astype(np.float32)[None, None]
    x = runs.model_input(seen, net, config, RUN)[0]
    want = feature_maps_array(net, x, 0)
    got = np.stack([map_array(m) for m in first["maps"]])
    np.testing.assert_allclose(got, want, rtol=2e-3, atol=2e-3)
    filters = body["filters"]
    assert filters["layer"] == 0 and filters["shape"] == [6, 1, 5, 5]
    kernels = np.stack([map_array(m) for m in filters["maps"]])
    weights = net.layers[0].params["W"][:, 0]
    np.testing.assert_allclose(kernels, weights, rtol=1e-3, atol=1e-6)


def test_output_maps_keep_at_most_32_channels():
    maps, truncated = predict.output_maps(np.zeros((40, 3, 3)))
    assert len(maps) == predict.MAX_CHANNEL_MAPS and truncated is True
    maps, truncated = predict.output_maps(np.arange(5.0))
    assert [m["shape"] for m in maps] == [[1, 5]] and truncated is False
    assert maps[0]["data"] == [0.0, 1.0, 2.0, 3.0, 4.0]


def test_as_map_rounds_to_4_significant_digits_and_clears_nan():
    m = predict.as_map(np.array([[0.123456, -98765.4], [np.nan, 1e-7]]))
    assert m["data"] == [0.1235, -98770.0, 0.0, 1e-7]
    assert m["min"] == -98770.0 and m["max"] == 0.1235 and m["shape"] == [2, 2]


def test_history_gives_the_curves_and_metrics(client, runs_dir):
    answer = client.get(f"/api/runs/{RUN}/history")
    assert answer.status_code == 200
    body = answer.json()
    metrics = json.loads((runs_dir / RUN / runs.METRICS).read_text())
    assert body["name"] == RUN
    for key in ("loss", "accuracy", "val_loss", "val_accuracy", "lr"):
        assert len(body["history"][key]) == EPOCHS, key
        assert all(isinstance(v, float) for v in body["history"][key]), key
    assert body["history"]["loss"][-1] < body["history"]["loss"][0]
    assert body["metrics"]["test_accuracy"] == pytest.approx(metrics["test_accuracy"])


# -- bad requests ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "name", ["nope", "../outside", "..", ".", "a/b", "/etc/passwd", "%2e%2e", "x" * 65]
)
def test_unknown_or_crafted_run_names_are_404(client, name):
    for path in ("/api/predict", "/api/features"):
        answer = client.post(path, params={"run": name}, content=png(drawn_seven()))
        assert_error(answer, 404, "no run named")
    assert_still_serving(client)


@pytest.mark.parametrize(
    "path", ["/api/runs/nope/history", "/api/runs/%2e%2e/history",
             "/api/runs/..%2Foutside/history", "/api/runs/a/b/history",
             "/api/runs/../outside/history"],
)  # fmt: skip
def test_history_of_an_unknown_or_crafted_name_is_404(client, path):
    answer = client.get(path)
    assert answer.status_code == 404
    assert "error" in answer.json()
    assert_still_serving(client)


def test_history_of_dot_dot_is_refused_by_name(client, runs_dir):
    """``%2e%2e`` reaches the handler as ``..`` (the client does not fold it away):
    the name's check refuses it, though ``RUNS_DIR/..`` holds a run (outside)."""
    assert (runs_dir / ".." / "outside" / runs.CONFIG).is_file()
    assert_error(client.get("/api/runs/%2e%2e/history"), 404, "no run named '..'")


def test_a_run_outside_runs_dir_is_never_opened(runs_dir):
    store = RunStore(runs_dir)
    assert store.names() == [RUN]
    with pytest.raises(Exception, match="no run named '../outside'"):
        store.open("../outside")
    assert (runs_dir.parent / "outside" / runs.MODEL).is_file()  # it is there


def test_missing_run_and_bad_query_values_are_400(client):
    seven = png(drawn_seven())
    assert_error(client.post("/api/predict", content=seven), 400, "?run=NAME")
    for query, word in (("top=0", "?top"), ("top=x", "?top"), ("maps=maybe", "?maps")):
        answer = client.post(f"/api/predict?run={RUN}&{query}", content=seven)
        assert_error(answer, 400, word, "expected")
    assert_still_serving(client)


def test_the_page_and_its_files_are_served(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith(
        "text/html"
    )
    assert "<html" in page.text.lower()
    script = client.get("/static/api.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert client.get("/static/nothing.js").status_code == 404


def test_wrong_method_and_page_are_json_errors(client):
    assert_error(client.get(f"/api/predict?run={RUN}"), 405, "Method Not Allowed")
    assert_error(client.get("/api/nothing"), 404, "Not Found")
    # "%2e%2e" is sent as it is ("/static/../app.py" the client itself folds into
    # "/app.py"): the static files must not climb out of their folder to app.py
    assert (Path(images.__file__).parent / "app.py").is_file()
    for path in (
        "/static/%2e%2e/app.py",
        "/static/%2e%2e%2fapp.py",
        "/static/.%2e/app.py",
    ):
        assert_error(client.get(path), 404, "Not Found")
    assert_still_serving(client)


LIMIT = images.MAX_UPLOAD_BYTES


def test_an_upload_over_5_mb_is_413(client):
    body = png(drawn_seven()) + b"\0" * LIMIT
    assert_error(client.post(f"/api/predict?run={RUN}", content=body), 413, "5 MB")
    assert_still_serving(client)


def test_an_upload_over_5_mb_without_content_length_is_413(client):
    def chunks():  # a generator: sent chunked, no Content-Length
        for _ in range(6):
            yield b"\0" * 2**20

    answer = client.post(f"/api/predict?run={RUN}", content=chunks())
    # refused while reading: the server never held the whole body
    assert_error(answer, 413, "too large", "got more than 5,242,880 bytes")
    assert_still_serving(client)


def test_an_upload_lying_about_its_length_is_413(client):
    body = png(drawn_seven()) + b"\0" * LIMIT
    answer = client.post(
        f"/api/predict?run={RUN}", content=body, headers={"content-length": "100"}
    )
    assert_error(answer, 413, "too large", "got more than 5,242,880 bytes")
    claims = client.post(
        f"/api/predict?run={RUN}", content=b"abc", headers={"content-length": "9999999"}
    )
    assert_error(claims, 413, "9,999,999 bytes")
    assert_still_serving(client)


def test_exactly_5_mb_is_not_too_large(client):
    body = png(drawn_seven())
    body += b"\0" * (LIMIT - len(body))  # PNG readers ignore bytes after IEND
    answer = client.post(f"/api/predict?run={RUN}&maps=0", content=body)
    assert answer.status_code == 200, answer.text[:300]


@pytest.mark.parametrize(
    "body, words",
    [
        (b"", ("empty",)),
        (b"hello, world", ("expected a PNG or JPEG", "text", "hello")),
        (b"GIF89a" + b"\0" * 20, ("GIF",)),
        (b"\x00\x01\x02\x03\x04\x05", ("00 01 02 03",)),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 30, ("cannot decode the PNG",)),
        (b"\xff\xd8\xff\xe0" + b"\0" * 30, ("cannot decode the JPEG",)),
    ],
)
def test_not_an_image_is_400_naming_what_came(client, body, words):
    answer = client.post(f"/api/predict?run={RUN}", content=body)
    assert_error(answer, 400, *words)
    assert_still_serving(client)


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares ``width x height`` pixels and holds none: a bomb's header."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


def test_too_many_pixels_is_400_before_decoding(client):
    answer = client.post(f"/api/predict?run={RUN}", content=png_header_only(5000, 4000))
    assert_error(answer, 400, "too many pixels", "5000 x 4000", "16,000,000")
    bomb = client.post(f"/api/predict?run={RUN}", content=png_header_only(60000, 60000))
    assert_error(bomb, 400, "too many pixels")
    assert_still_serving(client)


def test_a_truncated_png_is_400(client):
    whole = png(np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8))
    for cut in (len(whole) // 2, len(whole) // 4, 50):  # in the pixels, the header
        answer = client.post(f"/api/predict?run={RUN}", content=whole[:cut])
        assert_error(answer, 400, "cannot decode the PNG")
    assert_still_serving(client)


def test_features_refuse_bad_uploads_too(client):
    assert_error(client.post(f"/api/features?run={RUN}", content=b""), 400, "empty")
    big = b"\0" * (LIMIT + 1)
    assert_error(client.post(f"/api/features?run={RUN}", content=big), 413)
    assert_still_serving(client)


def test_an_internal_error_is_500_json_and_the_server_goes_on(client, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(predict, "predict_response", broken)
    answer = client.post(f"/api/predict?run={RUN}", content=png(drawn_seven()))
    assert_error(answer, 500, "internal error: RuntimeError: boom")
    monkeypatch.undo()
    assert (
        client.post(f"/api/predict?run={RUN}", content=png(drawn_seven())).status_code
        == 200
    )


def test_a_broken_model_file_is_500_naming_the_run(client, runs_dir):
    broken = runs_dir / "broken"
    broken.mkdir()
    (broken / runs.CONFIG).write_text((runs_dir / RUN / runs.CONFIG).read_text())
    (broken / runs.MODEL).write_bytes(b"not a model")
    try:
        answer = client.post("/api/predict?run=broken", content=png(drawn_seven()))
        assert_error(answer, 500, "run broken cannot be opened")
    finally:
        for name in (runs.MODEL, runs.CONFIG):
            (broken / name).unlink()
        broken.rmdir()
    assert_still_serving(client)


# -- the store -------------------------------------------------------------------------
def test_models_are_cached_until_the_model_file_changes(runs_dir):
    store = RunStore(runs_dir)
    first = store.open(RUN)
    assert store.open(RUN) is first
    path = runs_dir / RUN / runs.MODEL
    stamp = path.stat().st_mtime_ns
    os.utime(path, ns=(stamp + 10**9, stamp + 10**9))
    again = store.open(RUN)
    assert again is not first and again.input_shape == (1, 28, 28)
    assert isinstance(again.lock, type(threading.Lock()))


# -- images ----------------------------------------------------------------------------
def test_fitting_centres_an_off_centre_digit():
    """The same drawing in two corners of the canvas is fitted to the same 28 x 28
    digit: its longer side 20 pixels, its centre of mass at the centre."""
    fitted = []
    for shift in ((-50, -70), (60, 50)):
        pixels = images.read_upload(png(drawn_seven(shift=shift)), (1, 28, 28))
        assert pixels.shape == (1, 28, 28) and pixels.dtype == np.float32
        fitted.append(pixels[0])
    for digit in fitted:
        rows, cols = (
            np.flatnonzero(digit.any(axis=1)),
            np.flatnonzero(digit.any(axis=0)),
        )
        height, width = rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1
        assert max(height, width) in (20, 21, 22)  # 20, plus Lanczos's fringe
        cy, cx = images.centre_of_mass(digit)
        assert abs(cy - 13.5) <= 0.6 and abs(cx - 13.5) <= 0.6
    np.testing.assert_allclose(fitted[0], fitted[1], atol=1.0)


def test_fitting_a_blank_canvas_gives_black():
    pixels = images.read_upload(png(np.zeros((100, 100), np.uint8)), (1, 28, 28))
    assert not pixels.any()


def test_without_fitting_the_image_is_resized():
    digit = drawn_seven(56)
    pixels = images.read_upload(png(digit), (1, 28, 28), fit_digit=False)
    small = np.asarray(
        Image.fromarray(digit).resize((28, 28), Image.Resampling.BILINEAR)
    )
    np.testing.assert_allclose(pixels[0], small, atol=1.0)


def test_a_colour_model_gets_rgb_not_inverted():
    photo = np.zeros((64, 64, 3), dtype=np.uint8)
    photo[..., 0] = 200  # red everywhere, a lighter border than nothing
    photo[16:48, 16:48] = (0, 0, 255)  # a blue square in the middle
    upload = images.decode_upload(png(photo), (3, 32, 32))
    assert upload.pixels.shape == (3, 32, 32) and upload.inverted is False
    np.testing.assert_allclose(upload.pixels[:, 16, 16], [0, 0, 255], atol=1)
    np.testing.assert_allclose(upload.pixels[:, 1, 1], [200, 0, 0], atol=1)
    assert upload.fitted is False


def test_a_phone_photo_is_turned_upright_as_its_exif_says():
    """Stored left red, right blue, with the EXIF orientation 6 ("turn 90 degrees
    clockwise to view", as a phone held upright writes it): the browser shows red
    on top, blue below, and so must the model see it."""
    stored = np.zeros((20, 40, 3), dtype=np.uint8)
    stored[:, :20] = (255, 0, 0)
    stored[:, 20:] = (0, 0, 255)
    exif = Image.Exif()
    exif[images.EXIF_ORIENTATION] = 6
    buf = io.BytesIO()
    Image.fromarray(stored).save(buf, "JPEG", quality=95, exif=exif)
    pixels = images.read_upload(buf.getvalue(), (3, 32, 32))
    np.testing.assert_allclose(pixels[:, 4, 16], [255, 0, 0], atol=30)
    np.testing.assert_allclose(pixels[:, 27, 16], [0, 0, 255], atol=30)


def test_sixteen_bit_grey_is_scaled_to_eight_bits():
    wide = np.zeros((28, 28), dtype=np.uint16)
    wide[10:18, 10:18] = 65535
    pixels = images.read_upload(png(wide), (1, 28, 28), fit_digit=False)
    assert pixels.max() == pytest.approx(255.0, abs=0.5)


# -- the command -----------------------------------------------------------------------
@pytest.fixture
def fake_server(monkeypatch):
    """``cnnumpy.serve.serve`` replaced: the command's calls are recorded instead."""
    import cnnumpy.serve

    calls = []
    monkeypatch.setattr(
        cnnumpy.serve,
        "serve",
        lambda folder, host, port: calls.append((folder, host, port)),
    )
    return calls


def test_serve_command_prints_its_url_and_makes_the_folder(
    fake_server, tmp_path, capsys
):
    folder, port = tmp_path / "new-runs", free_port()
    assert main(["serve", str(folder), "--port", str(port)]) == 0
    out, err = capsys.readouterr()
    assert f"http://127.0.0.1:{port}/" in out and err == ""
    assert folder.is_dir() and fake_server == [(folder, "127.0.0.1", port)]


def test_serve_command_warns_when_not_on_loopback(
    fake_server, tmp_path, capsys, monkeypatch
):
    import cnnumpy.cli.serve as command

    monkeypatch.setattr(command, "network_addresses", lambda: ["192.168.1.20"])
    port = free_port()
    assert main(["serve", str(tmp_path), "--host", "0.0.0.0", "--port", str(port)]) == 0
    out, err = capsys.readouterr()
    assert "warning: listening on 0.0.0.0" in err and "--host 127.0.0.1" in err
    assert f"http://localhost:{port}/" in out
    assert f"from other machines: http://192.168.1.20:{port}/" in out


def test_network_addresses_leave_out_loopback_ones():
    from cnnumpy.cli.serve import is_loopback, network_addresses

    found = network_addresses()
    assert all(not is_loopback(a) and a != "0.0.0.0" for a in found)
    assert len(found) == len(set(found))


def test_serve_command_defaults():
    from cnnumpy.cli.parser import build_parser

    args = build_parser().parse_args(["serve"])
    assert (args.runs_dir, args.host, args.port) == ("runs", "127.0.0.1", 8000)


@pytest.mark.parametrize("port", ["0", "65536", "http", "-1"])
def test_serve_command_refuses_a_bad_port(fake_server, port, capsys):
    assert main(["serve", "--port", port]) == 2
    assert "expected a port from 1 to 65535" in capsys.readouterr().err
    assert fake_server == []


def test_serve_command_names_the_missing_packages(monkeypatch, tmp_path, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name: None if name == "uvicorn" else real(name),
    )
    assert main(["serve", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "needs uvicorn" in err and "pip install cnnumpy[serve]" in err


def test_serve_command_refuses_a_file_as_runs_dir(fake_server, tmp_path, capsys):
    path = tmp_path / "file"
    path.write_text("x")
    assert main(["serve", str(path)]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err


def test_serve_command_names_a_port_in_use(fake_server, tmp_path, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", str(tmp_path), "--port", str(port)]) == 2
    assert f"port {port} on 127.0.0.1 is in use" in capsys.readouterr().err
    assert fake_server == []


@pytest.mark.parametrize(
    "host, loopback",
    [("127.0.0.1", True), ("127.3.2.1", True), ("::1", True), ("[::1]", True),
     ("localhost", True), ("0.0.0.0", False), ("::", False), ("192.168.1.20", False),
     ("example.org", False)],
)  # fmt: skip
def test_loopback_hosts(host, loopback):
    from cnnumpy.cli.serve import is_loopback

    assert is_loopback(host) is loopback


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_real_server_answers_and_stops(runs_dir):
    """``cnnumpy serve`` in a process of its own: uvicorn, the URL, a request."""
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "cnnumpy",
        "serve",
        str(runs_dir),
        "--port",
        str(port),
    ]
    server = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        line = server.stdout.readline()
        assert f"http://127.0.0.1:{port}/" in line
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/runs") as r:
                    names = [run["name"] for run in json.load(r)["runs"]]
                break
            except OSError:
                assert time.monotonic() < deadline and server.poll() is None
                time.sleep(0.2)
        assert names == [RUN]
    finally:
        server.terminate()
        server.wait(timeout=30)
