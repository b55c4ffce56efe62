"""examples/caption.py and examples/mnist_rows.py, seed 003's last recurrent slides.

The captioner's strips and captions, its end-to-end gradient (decoder, then dE/dh_0
through the bridge into the CNN) by float64 finite differences, and ``--quick`` runs
of both examples.
"""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from cnnumpy.losses import CrossEntropy
from gradcheck import numerical_gradient

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load_example(name: str):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


caption = load_example("caption.py")
mnist_rows = load_example("mnist_rows.py")


def labelled_digits(count: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Digit i is an image filled with (i + 1) / 100 and labelled i % 10, so that
    each 28x28 block of a strip tells which digit was put there."""
    images = np.ones((count, 1, 28, 28), np.float32)
    images *= ((np.arange(count) + 1) / 100).astype(np.float32)[:, None, None, None]
    return images, np.arange(count) % 10


# -- strips and captions ---------------------------------------------------------------
def test_strips_hold_one_to_four_digits_from_the_left_then_black():
    images, labels = labelled_digits()
    rng = np.random.default_rng(0)
    strips, digits = caption.make_strips(images, labels, 200, rng)
    assert strips.shape == (200, 1, 28, 112)
    assert strips.dtype == np.float32
    assert {len(d) for d in digits} == {1, 2, 3, 4}
    for strip, strip_digits in zip(strips, digits, strict=True):
        blocks = [strip[0, :, 28 * i : 28 * (i + 1)] for i in range(4)]
        for i, block in enumerate(blocks):
            if i < len(strip_digits):  # the digit's own image, uniform here
                pick = int(round(block[0, 0] * 100)) - 1
                np.testing.assert_array_equal(block, images[pick, 0])
                assert labels[pick] == strip_digits[i]
            else:
                assert not block.any(), "the padding is black"


@pytest.mark.parametrize("max_digits", [1, 2])
def test_strips_width_follows_max_digits(max_digits):
    images, labels = labelled_digits()
    rng = np.random.default_rng(1)
    strips, digits = caption.make_strips(images, labels, 20, rng, max_digits)
    assert strips.shape == (20, 1, 28, 28 * max_digits)
    assert max(len(d) for d in digits) <= max_digits


def test_vocabulary_and_teacher_forcing_pairs():
    assert caption.WORDS[:3] == ("<BoS>", "<EoS>", "<pad>")
    assert caption.WORDS[caption.FIRST_DIGIT + 7] == "seven"
    assert len(caption.WORDS) == 13
    words_in, words_out = caption.caption_ids([[7, 2, 1], [0, 9, 9, 5], [3]])
    bos, eos, pad = caption.BOS, caption.EOS, caption.PAD
    d = caption.FIRST_DIGIT
    assert words_in.shape == words_out.shape == (3, 5)
    assert words_in.dtype == words_out.dtype == np.int64
    np.testing.assert_array_equal(words_in[0], [bos, d + 7, d + 2, d + 1, pad])
    np.testing.assert_array_equal(words_out[0], [d + 7, d + 2, d + 1, eos, pad])
    np.testing.assert_array_equal(words_in[1], [bos, d, d + 9, d + 9, d + 5])
    np.testing.assert_array_equal(words_out[1], [d, d + 9, d + 9, d + 5, eos])
    np.testing.assert_array_equal(words_out[2], [d + 3, eos, pad, pad, pad])
    assert caption.caption_text(words_out[0]) == "seven two one"
    assert caption.caption_text(words_out[1]) == "zero nine nine five"
    assert caption.caption_text([eos, d + 1]) == ""
    assert caption.true_caption([7, 2, 1]) == "seven two one"


def tiny_captioner(dtype=np.float64):
    """A CNN of 2 + 2 filters on strips of up to 2 digits, a GRU of 3 units."""
    model = caption.Captioner(
        (1, 28, 56), filters=(2, 2), features=4, hidden=3, embed=2
    )
    return model.astype(dtype)


def test_greedy_captions_have_the_decoders_length_and_words():
    import cnnumpy

    cnnumpy.seed(0)
    model = tiny_captioner(np.float32)
    images, labels = labelled_digits()
    strips, _ = caption.make_strips(images, labels, 6, np.random.default_rng(0), 2)
    written = model.caption(strips)
    assert written.shape == (6, caption.STEPS)
    assert written.min() >= 0 and written.max() < len(caption.WORDS)
    assert model.forward(strips, np.zeros((6, 5), np.int64)).shape == (6, 5, 13)


def test_gradient_flows_from_the_words_back_into_the_cnn():
    """dE/dW of the first conv (reached only through the GRU's initial_state_grad)
    and of the GRU's W_hh, W_xh and the bridge, against centred differences."""
    import cnnumpy

    cnnumpy.seed(0)
    model = tiny_captioner()
    rng = np.random.default_rng(0)
    images = rng.random((10, 1, 28, 28))
    strips, digits = caption.make_strips(images, np.arange(10), 3, rng, 2)
    words_in, words_out = caption.caption_ids(digits, steps=3)
    assert (words_out == caption.PAD).any(), "padding is part of the check"
    loss = CrossEntropy(ignore_index=caption.PAD)

    def total_loss():
        return loss(model.forward(strips, words_in, training=True), words_out)

    total_loss()
    model.backward(loss.backward())
    checked = {
        "conv W": (model.cnn[0], "W"),
        "GRU W_hh": (model.gru, "W_hh"),
        "GRU W_xh": (model.gru, "W_xh"),
        "bridge W": (model.bridge[0], "W"),
    }
    analytic = {k: layer.grads[p].copy() for k, (layer, p) in checked.items()}
    assert np.abs(analytic["conv W"]).max() > 1e-4, "the CNN gets a gradient"
    for what, (layer, name) in checked.items():
        numeric = numerical_gradient(total_loss, layer.params[name], np.float64(1.0))
        np.testing.assert_allclose(
            analytic[what], numeric, rtol=1e-5, atol=1e-8, err_msg=what
        )


# -- the examples' quick runs ----------------------------------------------------------
def test_caption_quick_run_learns_and_prints_captions(capsys):
    rate = caption.main(["--quick"])
    out = capsys.readouterr().out
    assert "test exact match" in out
    assert out.count("true:") == 8
    losses = [
        float(line.split("loss ")[1].split()[0])
        for line in out.splitlines()
        if line.startswith("epoch ")
    ]
    assert losses[-1] < min(losses[0], 2.0)  # ln 13 = 2.56 at the start
    assert 0.0 < rate <= 1.0
    assert "time:" in out


def test_mnist_rows_quick_run_beats_chance(capsys):
    accuracy = mnist_rows.main(["--quick"])
    out = capsys.readouterr().out
    assert "28 steps of 28 pixels" in out
    assert f"test accuracy: {accuracy:.4f}" in out
    assert accuracy > 0.4  # chance is 0.1
