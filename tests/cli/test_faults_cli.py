"""``cnnumpy evaluate | predict | visualize`` against the faults a tester found: model
files carried out of their run, models whose outputs are not probabilities, transparent
and oversized images, hand-edited ``config.json`` files, models without convolutions.

Like ``test_cli.py``, the CLI runs in-process on a tiny MNIST-format data set.
"""

import json
import shutil
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

# test_cli's tiny MNIST and its fixtures (tiny_sizes is autouse)
from test_cli import N_TEST, N_TRAIN, TRAIN, data_dir, run, tiny_sizes  # noqa: F401

from cnnumpy import Sequential, load_model, zoo
from cnnumpy.cli import runs
from cnnumpy.data import ChecksumWarning, sources
from cnnumpy.layers import Dense, Flatten, Sigmoid, Softmax
from cnnumpy.saving.safefile import dump_bytes, load_bytes

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def run_dir(data_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "tiny"
    with pytest.MonkeyPatch.context() as mp, warnings.catch_warnings():
        mp.setitem(sources.MNIST.sizes, "train", N_TRAIN)
        mp.setitem(sources.MNIST.sizes, "test", N_TEST)
        warnings.simplefilter("ignore", ChecksumWarning)
        code = main_quiet([*TRAIN, "--data-dir", str(data_dir), "--out", str(out)])
    assert code == 0
    return out


def main_quiet(argv) -> int:
    import contextlib
    import io

    from cnnumpy.cli import main

    with contextlib.redirect_stdout(io.StringIO()):
        return main([str(a) for a in argv])


def _results(stdout: str) -> list[str]:
    """Each printed prediction without its leading ``PATH: ``."""
    return [line.split(": ", 1)[1] for line in stdout.strip().splitlines()]


def _one_line_error(code: int, err: str) -> None:
    assert code == 2, err
    assert err.startswith("cnnumpy: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err


# -- 15: the model file carries its preprocessing --------------------------------------
def test_train_stores_the_preprocessing_in_the_model_file(run_dir):
    config = json.loads((run_dir / runs.CONFIG).read_text())
    prep = load_model(run_dir / runs.MODEL).preprocessing
    assert prep == {
        "scale": 1 / 255,
        "mean": config["preprocessing"]["mean"],
        "std": config["preprocessing"]["std"],
    }


def test_a_copied_model_file_predicts_and_evaluates_like_its_run(
    run_dir, data_dir, digit, tmp_path, capsys
):
    copy = tmp_path / "elsewhere" / "copy.safetensors"
    copy.parent.mkdir()
    shutil.copy(run_dir / runs.MODEL, copy)
    code, in_run, _ = run(["predict", run_dir, digit], capsys)
    assert code == 0
    code, alone, err = run(["predict", copy, digit], capsys)
    assert code == 0 and err == ""  # no "not standardised" warning
    assert _results(alone) == _results(in_run)
    evaluate = ["evaluate", "--data-dir", data_dir, "--out", tmp_path]
    code, in_run, _ = run([*evaluate, run_dir], capsys)
    assert code == 0
    code, alone, _ = run([*evaluate, copy, "--dataset", "mnist"], capsys)
    assert code == 0
    accuracy = json.loads((run_dir / runs.METRICS).read_text())["test_accuracy"]
    line = next(s for s in in_run.splitlines() if s.startswith("loss "))
    assert f"accuracy {accuracy:.2%}" in line and line in alone.splitlines()


def test_an_old_model_file_falls_back_to_config_json(run_dir, digit, tmp_path, capsys):
    code, expected, _ = run(["predict", run_dir, digit], capsys)
    old = tmp_path / "old"
    shutil.copytree(run_dir, old)
    model = load_model(old / runs.MODEL)
    model.preprocessing = None  # as written before the model file carried it
    model.save(old / runs.MODEL)
    code, stdout, err = run(["predict", old, digit], capsys)
    assert code == 0 and err == "" and _results(stdout) == _results(expected)


def test_a_bare_model_file_without_preprocessing_warns(digit, tmp_path, capsys):
    model = zoo.get("lenet1")
    model.compile(loss="cross_entropy")
    model.save(tmp_path / "bare.safetensors")
    code, stdout, err = run(["predict", tmp_path / "bare.safetensors", digit], capsys)
    assert code == 0 and stdout.startswith(f"{digit}: ")
    assert err.startswith("cnnumpy: warning: ") and err.count("\n") == 1
    assert "not standardised" in err


def _with_meta(path: Path, key: str, value) -> None:
    """Rewrite a model file with one metadata field replaced (a valid checksum)."""
    tensors, meta = load_bytes(path.read_bytes())
    for name in ("format", "format_version", "sha256"):
        meta.pop(name)
    meta[key] = value
    path.write_bytes(dump_bytes(tensors, meta))


GOOD = {"scale": 1 / 255, "mean": [0.13], "std": [0.31]}
BAD_PREPROCESSING = [
    ("not a dict", "scale"),
    ({**GOOD, "mean": "abc"}, "mean"),
    ({**GOOD, "mean": [0.1, 0.2, 0.3]}, "mean"),
    ({**GOOD, "mean": [True]}, "mean"),
    ({**GOOD, "mean": [float("nan")]}, "mean"),
    ({**GOOD, "std": [0.0]}, "std"),
    ({**GOOD, "std": [-0.3]}, "std"),
    ({**GOOD, "std": [float("inf")]}, "std"),
    ({**GOOD, "scale": "x / 255"}, "scale"),
    ({**GOOD, "scale": 0}, "scale"),
    ({"mean": [0.13], "std": [0.31]}, "scale"),
    ({**GOOD, "invert": True}, "invert"),
]


@pytest.mark.parametrize("value, field", BAD_PREPROCESSING)
def test_bad_preprocessing_is_refused_on_save_and_on_load(value, field, tmp_path):
    model = zoo.get("lenet1")
    model.preprocessing = value
    with pytest.raises(ValueError, match=f"preprocessing.*{field}"):
        model.save(tmp_path / "m.safetensors")
    model.preprocessing = dict(GOOD)
    model.save(tmp_path / "m.safetensors")
    assert load_model(tmp_path / "m.safetensors").preprocessing == GOOD
    _with_meta(tmp_path / "m.safetensors", "preprocessing", value)
    from cnnumpy.saving import ModelFileError

    with pytest.raises(ModelFileError, match=f"preprocessing.*{field}"):
        load_model(tmp_path / "m.safetensors")


# -- 16: scores are not probabilities --------------------------------------------------
def _small(last=None, outputs: int = 3, loss=None) -> Sequential:
    layers = [Flatten(), Dense(outputs)]
    model = Sequential([*layers, *([last] if last else [])], input_shape=(1, 8, 8))
    model.layers[1].params["W"][...] = 0.05
    model.layers[1].params["b"][...] = np.arange(outputs) * 3.0
    if loss is not None:
        model.compile(loss=loss)
    return model


@pytest.mark.parametrize(
    "model, probabilities",
    [
        (_small(), False),  # saved without compile: raw scores
        (_small(loss="mse"), False),
        (_small(loss="cross_entropy"), True),
        (_small(Softmax()), True),
        (_small(Sigmoid(), outputs=1), True),
        (_small(outputs=1, loss="binary_cross_entropy"), True),
    ],
)
def test_predict_prints_percentages_only_for_probabilities(
    model, probabilities, digit, tmp_path, capsys
):
    model.save(tmp_path / "m.safetensors")
    code, stdout, _ = run(["predict", tmp_path / "m.safetensors", digit], capsys)
    assert code == 0
    (line,) = _results(stdout)
    if probabilities:
        classes = 2 if model.output_shape[0] == 1 else 3  # one sigmoid: 2 classes
        assert "score" not in line and line.count("%)") == classes
        shares = [float(s.split("(")[1].rstrip("%)")) for s in line.split(", ")]
        assert all(0 <= s <= 100 for s in shares)
    else:
        assert "%" not in line and line.count("(score ") == 3
        assert line.startswith("2 (score ")  # the largest bias wins


def test_visualize_labels_scores_as_scores(digit, tmp_path, capsys):
    folder = tmp_path / "raw"
    folder.mkdir()
    _small(outputs=3).save(folder / runs.MODEL)
    argv = ["visualize", folder, "--image", digit, "--method", "saliency"]
    code, stdout, _ = run([*argv, "--out", tmp_path], capsys)
    assert code == 0 and "predicted 2 (score " in stdout and "%" not in stdout


# -- 17: transparent images ------------------------------------------------------------
def _canvas(stroke, mode: str, path: Path) -> Path:
    """A square stroke on a fully transparent black canvas, saved as PNG."""
    rgba = np.zeros((28, 28, 4), np.uint8)
    rgba[6:14, 8:16] = (*stroke, 255)
    image = Image.fromarray(rgba, "RGBA")
    if mode == "LA":
        image = image.convert("LA")
    elif mode == "P":
        image = image.convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
        alpha = np.asarray(Image.fromarray(rgba[..., 3]))
        transparent = int(np.asarray(image)[alpha == 0][0])
        image.info["transparency"] = transparent
        image.save(path, transparency=transparent)
        return path
    image.save(path)
    return path


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P"])
@pytest.mark.parametrize(
    "stroke, invert", [((0, 0, 0), True), ((255, 255, 255), False)]
)
def test_a_digit_on_a_transparent_canvas_is_not_blank(mode, stroke, invert, tmp_path):
    path = _canvas(stroke, mode, tmp_path / "canvas.png")
    pixels = runs.read_image(path, (1, 28, 28), invert)[0]
    assert pixels[6:14, 8:16].min() == 255  # the stroke, white as in MNIST
    pixels[6:14, 8:16] = 0
    assert pixels.max() == 0  # the transparent background, black as in MNIST


def test_a_transparent_photo_is_composited_on_white(tmp_path):
    path = _canvas((255, 0, 0), "RGBA", tmp_path / "photo.png")
    pixels = runs.read_image(path, (3, 28, 28), False)
    assert pixels[:, 0, 0].tolist() == [255, 255, 255]
    assert pixels[:, 10, 10].tolist() == [255, 0, 0]


def test_a_stroke_the_colour_of_the_background_warns(tmp_path, capsys):
    path = _canvas((0, 0, 0), "RGBA", tmp_path / "canvas.png")
    pixels = runs.read_image(path, (1, 28, 28), False)
    assert pixels.max() == 0
    err = capsys.readouterr().err
    assert err.startswith("cnnumpy: warning: ") and err.count("\n") == 1
    assert "--invert" in err


def test_predict_a_transparent_drawing_like_the_same_on_paper(
    run_dir, tmp_path, capsys
):
    canvas = _canvas((0, 0, 0), "RGBA", tmp_path / "canvas.png")
    paper = tmp_path / "paper.png"
    pixels = np.full((28, 28), 255, np.uint8)
    pixels[6:14, 8:16] = 0
    Image.fromarray(pixels).save(paper)
    code, stdout, err = run(["predict", run_dir, canvas, paper, "--invert"], capsys)
    assert code == 0 and err == ""
    on_canvas, on_paper = _results(stdout)
    assert on_canvas == on_paper


# -- 21: visualize a model without convolutions ----------------------------------------
def test_visualize_an_mlp_skips_the_methods_that_need_convolutions(
    digit, tmp_path, capsys
):
    folder = tmp_path / "mlp"
    folder.mkdir()
    zoo.get("mnist_mlp").save(folder / runs.MODEL)
    code, stdout, err = run(["visualize", folder, "--image", digit], capsys)
    assert code == 0, err
    for method in ("features", "filters", "gradcam"):
        assert f"{method}: skipped, the model has no Conv2D layer" in stdout
    paths = [Path(p) for p in stdout.splitlines() if p.endswith(".png")]
    assert sorted(p.name.split("-")[0] for p in paths) == ["occlusion", "saliency"]
    assert all(p.read_bytes()[:8] == PNG_MAGIC for p in paths)


def test_visualize_an_mlp_with_only_conv_methods_is_a_one_line_error(
    digit, tmp_path, capsys
):
    folder = tmp_path / "mlp"
    folder.mkdir()
    zoo.get("mnist_mlp").save(folder / runs.MODEL)
    argv = ["visualize", folder, "--image", digit, "--method", "filters", "gradcam"]
    code, _, err = run(argv, capsys)
    _one_line_error(code, err)
    assert "no Conv2D layer" in err


# -- 11: one line and exit code 2 ------------------------------------------------------
def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = struct.pack(">I", zlib.crc32(kind + data))
    return struct.pack(">I", len(data)) + kind + data + crc


def _huge_png(path: Path, width: int, height: int) -> Path:
    """A PNG whose header declares width x height grey pixels; a few hundred bytes."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = zlib.compress(b"\x00" * (width + 1) * 4)  # 4 rows, the rest is missing
    body = _chunk(b"IHDR", header) + _chunk(b"IDAT", rows) + _chunk(b"IEND", b"")
    path.write_bytes(PNG_MAGIC + body)
    return path


@pytest.mark.parametrize("side", [30000, 10000])
@pytest.mark.parametrize("command", ["predict", "visualize"])
def test_a_decompression_bomb_is_refused_in_one_line(
    run_dir, side, command, tmp_path, capsys
):
    bomb = _huge_png(tmp_path / "bomb.png", side, side)
    assert bomb.stat().st_size < 100_000
    if command == "predict":
        argv = ["predict", run_dir, bomb]
    else:
        argv = ["visualize", run_dir, "--image", bomb, "--method", "saliency"]
    code, _, err = run(
        [*argv, *(["--out", tmp_path] if command != "predict" else [])], capsys
    )
    _one_line_error(code, err)
    assert f"{bomb}: the image is too large to read" in err and "pixels" in err


CONFIG_FAULTS = [
    ("preprocessing", {"mean": "abc", "std": [0.3]}),
    ("preprocessing", {"mean": "a", "std": [0.3]}),
    ("preprocessing", {"mean": [0.1], "std": [0.0]}),
    ("preprocessing", {"mean": [float("nan")], "std": [0.3]}),
    ("preprocessing", {"mean": [0.1, 0.2], "std": [0.3, 0.3]}),
    ("preprocessing", "abc"),
    ("class_names", 5),
    ("class_names", ["a", "b"]),
    ("data_dir", 5),
    ("dataset", 5),
    ("input_shape", "abc"),
    ("input_shape", [3, 32, 32]),
]


@pytest.mark.parametrize("key, value", CONFIG_FAULTS)
@pytest.mark.parametrize("command", ["predict", "evaluate", "visualize"])
def test_a_hand_edited_config_is_a_one_line_error(
    run_dir, key, value, command, digit, tmp_path, capsys
):
    edited = tmp_path / "edited"
    shutil.copytree(run_dir, edited)
    config = json.loads((edited / runs.CONFIG).read_text())
    config[key] = value
    (edited / runs.CONFIG).write_text(json.dumps(config))
    argv = {
        "predict": ["predict", edited, digit],
        "evaluate": ["evaluate", edited, "--out", tmp_path],
        "visualize": ["visualize", edited, "--method", "saliency", "--out", tmp_path],
    }[command]
    code, stdout, err = run(argv, capsys)
    _one_line_error(code, err)
    assert f"{edited / runs.CONFIG}: {key}" in err and stdout == ""


@pytest.mark.parametrize("command", ["predict", "evaluate", "visualize"])
def test_a_config_with_null_fields_still_works(
    run_dir, command, digit, tmp_path, capsys
):
    edited = tmp_path / "edited"
    shutil.copytree(run_dir, edited)
    config = json.loads((edited / runs.CONFIG).read_text())
    config.update(input_shape=None, class_names=None, preprocessing=None)
    (edited / runs.CONFIG).write_text(json.dumps(config))
    argv = {
        "predict": ["predict", edited, digit],
        "evaluate": ["evaluate", edited, "--out", tmp_path],
        "visualize": ["visualize", edited, "--method", "saliency", "--out", tmp_path],
    }[command]
    code, _, err = run(argv, capsys)
    assert code == 0 and err == ""  # the model file has the preprocessing


def test_evaluate_a_model_with_fewer_classes_than_the_data(data_dir, tmp_path, capsys):
    model = Sequential([Flatten(), Dense(3)], input_shape=(1, 28, 28))  # no loss
    model.preprocessing = dict(GOOD)
    model.save(tmp_path / "m.safetensors")
    argv = ["evaluate", tmp_path / "m.safetensors", "--dataset", "mnist"]
    code, _, err = run([*argv, "--data-dir", data_dir, "--out", tmp_path], capsys)
    _one_line_error(code, err)
    assert "the model outputs 3 classes, mnist has labels up to 9" in err


def test_out_of_memory_is_one_line(run_dir, digit, monkeypatch, capsys):
    def exhausted(target):
        raise MemoryError("Unable to allocate 3.50 TiB for an array")

    monkeypatch.setattr(runs, "open_run", exhausted)
    code, _, err = run(["predict", run_dir, digit], capsys)
    _one_line_error(code, err)
    assert "out of memory" in err


# -- 22: odd values and messages -------------------------------------------------------
@pytest.mark.parametrize("command", ["evaluate", "visualize"])
def test_an_out_that_is_a_file_is_refused_before_the_work(
    run_dir, command, tmp_path, capsys
):
    taken = tmp_path / "taken"
    taken.write_text("not a folder")
    argv = [command, run_dir, "--out", taken]
    code, stdout, err = run(
        [*argv, *(["--method", "saliency"] if command == "visualize" else [])], capsys
    )
    _one_line_error(code, err)
    assert f"--out {taken}: exists and is not a folder" in err and stdout == ""


def test_a_16_bit_png_is_scaled_not_clipped(tmp_path):
    path = tmp_path / "deep.png"
    values = np.linspace(0, 65535, 28 * 28).reshape(28, 28).astype(np.uint16)
    Image.fromarray(values).save(path)
    pixels = runs.read_image(path, (1, 28, 28), False)[0]
    np.testing.assert_allclose(pixels, values / 257, atol=1)


def test_a_float_image_is_refused_in_one_line(run_dir, tmp_path, capsys):
    path = tmp_path / "float.tiff"
    Image.fromarray(np.linspace(0, 1, 28 * 28, dtype=np.float32).reshape(28, 28)).save(
        path
    )
    code, _, err = run(["predict", run_dir, path], capsys)
    _one_line_error(code, err)
    assert str(path) in err and "8-bit" in err


def test_a_checkpoint_file_predicts_like_its_run(run_dir, digit, capsys):
    code, expected, _ = run(["predict", run_dir, digit], capsys)
    checkpoint = run_dir / runs.CHECKPOINT_DIR / runs.CHECKPOINT
    code, stdout, err = run(["predict", checkpoint, digit], capsys)
    assert code == 0 and err == "" and _results(stdout) == _results(expected)
