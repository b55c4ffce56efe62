"""The technique lab: every technique of the notes gives the same numbers."""

import numpy as np
import pytest

from cnnumpy.functional.techniques import (
    TECHNIQUES,
    format_table,
    make_inputs,
    run_lab,
)

TINY = {
    "dense": {"N": 3, "I": 5, "J": 4},
    "conv": {"N": 2, "C": 2, "H": 5, "F": 3, "K": 3, "P": 1},
    "pool": {"N": 2, "C": 2, "H": 4},
}


@pytest.mark.parametrize(
    "layer, name",
    [(layer, name) for layer, table in TECHNIQUES.items() for name in table],
)
def test_every_technique_matches_the_loops(layer, name):
    args = make_inputs(layer, TINY[layer])
    want_y, want_grads = TECHNIQUES[layer]["loops"](*args)
    y, grads = TECHNIQUES[layer][name](*args)
    assert y.shape == want_y.shape
    np.testing.assert_allclose(y, want_y, rtol=1e-10, atol=1e-10)
    assert len(grads) == len(want_grads)
    for got, want in zip(grads, want_grads, strict=False):
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("P", [0, 2])
def test_conv_techniques_with_other_padding(P):
    args = make_inputs("conv", {**TINY["conv"], "P": P, "K": 3})
    want_y, want_grads = TECHNIQUES["conv"]["loops"](*args)
    for name, fn in TECHNIQUES["conv"].items():
        y, grads = fn(*args)
        np.testing.assert_allclose(y, want_y, rtol=1e-10, atol=1e-10, err_msg=name)
        for got, want in zip(grads, want_grads, strict=False):
            np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10, err_msg=name)


def test_pool_ties_go_to_the_first_maximum():
    x = np.ones((1, 1, 2, 2))
    dout = np.full((1, 1, 1, 1), 3.0)
    for fn in TECHNIQUES["pool"].values():
        _, (dx,) = fn(x, dout)
        np.testing.assert_array_equal(dx, [[[[3.0, 0.0], [0.0, 0.0]]]])


def test_run_lab_rows_and_table():
    rows = run_lab(sizes=TINY, repeats=1)
    assert [r["technique"] for r in rows if r["layer"] == "conv"] == list(
        TECHNIQUES["conv"]
    )
    assert all(r["agrees"] and r["seconds"] > 0 for r in rows)
    assert rows[0]["speedup"] == pytest.approx(1.0)
    table = format_table(rows)
    assert "im2col+matmul" in table and "speed-up" in table
