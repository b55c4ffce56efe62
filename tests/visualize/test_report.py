"""Tests of cnnumpy.report.write_report: a self-contained, well-formed page."""

from __future__ import annotations

import base64
import io
from html.parser import HTMLParser

import numpy as np
import pytest
from PIL import Image

from cnnumpy.callbacks import History
from cnnumpy.layers import Conv2D, Dense, Flatten, MaxPool2D, ReLU
from cnnumpy.report import SECTIONS, pick_examples, write_report
from cnnumpy.rng import seed
from cnnumpy.sequential import Sequential

VOID = {"meta", "img", "br", "hr", "link", "input"}


class PageParser(HTMLParser):
    """Collects section ids, image sources and text; checks that tags nest properly."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.sections: list[str] = []
        self.images: list[str] = []
        self.text: list[str] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.add(tag)
        if tag == "section":
            self.sections.append(attrs.get("id"))
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"unexpected </{tag}>, open: {self.stack}")
        else:
            self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def parse(path) -> PageParser:
    parser = PageParser()
    parser.feed(path.read_text(encoding="utf-8"))
    parser.close()
    assert parser.errors == [] and parser.stack == [], (parser.errors, parser.stack)
    return parser


def tiny_model() -> Sequential:
    seed(0)
    model = Sequential(
        [Conv2D(3, 3, padding=1), ReLU(), MaxPool2D(2), Flatten(), Dense(3)],
        input_shape=(1, 8, 8),
        name="tiny <net>",
    )
    model.compile(loss="cross_entropy")
    return model


def history() -> History:
    h = History()
    for epoch in range(3):
        h.on_epoch_end(
            epoch,
            {
                "loss": 1.0 / (epoch + 1),
                "accuracy": 0.3 * epoch,
                "val_loss": 1.2 / (epoch + 1),
                "val_accuracy": 0.25 * epoch,
                "lr": 0.01,
                "time": 0.5,
            },
        )
    return h


@pytest.fixture
def test_data():
    rng = np.random.default_rng(0)
    return rng.random((40, 1, 8, 8)).astype(np.float32), rng.integers(0, 3, 40)


def test_report_is_self_contained_and_escaped(tmp_path, test_data):
    x, y = test_data
    path = write_report(
        tmp_path / "run",
        tiny_model(),
        config={
            "model": "tiny",
            "note": "<script>alert(1)</script>",
            "lr": 0.01,
            "layers": [3, 3],
        },
        history=history(),
        x_test=x,
        y_test=y,
        class_names=["cat", "dog & co", "bird"],
        timings={"train": 12.5, "evaluate": 0.25, "device": "cpu"},
        n_examples=3,
    )
    assert path == tmp_path / "run" / "report.html"
    html_text = path.read_text(encoding="utf-8")
    page = parse(path)
    assert page.sections == list(SECTIONS)
    assert "script" not in page.tags  # the config text was escaped, not run
    assert "&lt;script&gt;" in html_text and "tiny &lt;net&gt;" in html_text
    text = "".join(page.text)
    assert "<script>alert(1)</script>" in text  # shown as text
    assert "dog & co" in text and "12.500 s" in text and "cpu" in text
    # curves, confusion matrix, mistakes, 3 examples, filters
    assert len(page.images) == 7
    for src in page.images:
        assert src.startswith("data:image/png;base64,")
        png = base64.b64decode(src.split(",", 1)[1], validate=True)
        with Image.open(io.BytesIO(png)) as image:
            assert image.format == "PNG" and min(image.size) >= 100
    assert "http://" not in html_text and "https://" not in html_text
    assert "Test accuracy" in text and "Total parameters" in text


def test_report_without_test_data_or_history(tmp_path):
    path = write_report(tmp_path, tiny_model())
    page = parse(path)
    assert page.sections == [
        "configuration",
        "model",
        "curves",
        "evaluation",
        "timings",
    ]
    text = "".join(page.text)
    assert "No test data given." in text and "No training history given." in text
    assert page.images == []


def test_report_of_a_model_without_convolution(tmp_path, test_data):
    x, y = test_data
    seed(0)
    model = Sequential([Flatten(), Dense(3)], input_shape=(1, 8, 8))
    path = write_report(
        tmp_path, model, x_test=x, y_test=y, n_examples=2, filename="dense.html"
    )
    page = parse(path)
    assert path.name == "dense.html"
    assert "maps" in page.sections
    text = "".join(page.text)
    assert (
        "first-layer filters: not drawn (filters: the model has no Conv2D layer)"
        in text
    )
    assert len(page.images) == 4  # confusion matrix, mistakes, 2 examples


def test_report_argument_errors(tmp_path, test_data):
    x, y = test_data
    with pytest.raises(ValueError, match=r"x_test must have shape \(N, 1, 8, 8\)"):
        write_report(tmp_path, tiny_model(), x_test=x[:, :, :4], y_test=y)
    with pytest.raises(ValueError, match="40 test images for 39 labels"):
        write_report(tmp_path, tiny_model(), x_test=x, y_test=y[:39])
    with pytest.raises(ValueError, match="2 class names for 3 classes"):
        write_report(tmp_path, tiny_model(), x_test=x, y_test=y, class_names=["a", "b"])
    assert not (tmp_path / "report.html").exists()


def test_pick_examples_spreads_over_classes():
    assert pick_examples(np.array([2, 2, 0, 1, 0]), 3) == [0, 2, 3]
    assert pick_examples(np.array([1, 1, 1, 1]), 3) == [0, 1, 2]
