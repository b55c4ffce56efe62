"""The technique lab: every technique of the notes gives the same numbers, forward and
backward, and the lab times both passes apart."""

import numpy as np
import pytest

from cnnumpy.lab import techniques
from cnnumpy.lab.techniques import (
    OUTPUTS,
    TECHNIQUES,
    Technique,
    format_table,
    make_inputs,
    run_lab,
)

TINY = {
    "dense": {"N": 3, "I": 5, "J": 4},
    "conv": {"N": 2, "C": 2, "H": 5, "F": 3, "K": 3, "P": 1},
    "pool": {"N": 2, "C": 2, "H": 4},
}
ALL = [(layer, name) for layer, table in TECHNIQUES.items() for name in table]


def forward_backward(technique, args, dout):
    y, cache = technique.forward(*args)
    return (y, *technique.backward(dout, cache))


def assert_same(got, want, layer, name, tol=1e-10):
    assert len(got) == len(want) == len(OUTPUTS[layer])
    for label, g, w in zip(OUTPUTS[layer], got, want, strict=True):
        assert g.shape == w.shape, (name, label)
        np.testing.assert_allclose(g, w, rtol=tol, atol=tol, err_msg=f"{name} {label}")


@pytest.mark.parametrize("layer, name", ALL)
def test_every_technique_matches_the_loops_forward_and_backward(layer, name):
    args, dout = make_inputs(layer, TINY[layer])
    want = forward_backward(TECHNIQUES[layer]["loops"], args, dout)
    got = forward_backward(TECHNIQUES[layer][name], args, dout)
    assert_same(got, want, layer, name)


def test_the_loops_are_right():
    """The reference itself, against plain matrix algebra."""
    (x, W, b), dout = make_inputs("dense", TINY["dense"])
    y, dx, dW, db = forward_backward(TECHNIQUES["dense"]["loops"], (x, W, b), dout)
    np.testing.assert_allclose(y, x @ W + b, rtol=1e-12)
    np.testing.assert_allclose(dx, dout @ W.T, rtol=1e-12)
    np.testing.assert_allclose(dW, x.T @ dout, rtol=1e-12)
    np.testing.assert_allclose(db, dout.sum(0), rtol=1e-12)


@pytest.mark.parametrize("P, K", [(0, 3), (2, 3), (3, 3), (0, 1), (1, 2)])
def test_conv_techniques_with_other_padding_and_kernels(P, K):
    args, dout = make_inputs("conv", {**TINY["conv"], "P": P, "K": K})
    want = forward_backward(TECHNIQUES["conv"]["loops"], args, dout)
    for name, technique in TECHNIQUES["conv"].items():
        assert_same(forward_backward(technique, args, dout), want, "conv", name)


@pytest.mark.parametrize("layer, name", ALL)
def test_float32_in_float32_out(layer, name):
    args, dout = make_inputs(layer, TINY[layer], dtype=np.float32)
    for out in forward_backward(TECHNIQUES[layer][name], args, dout):
        assert out.dtype == np.float32, (layer, name)


@pytest.mark.parametrize("name", list(TECHNIQUES["pool"]))
def test_pool_ties_go_to_the_first_maximum(name):
    x = np.ones((1, 1, 2, 2))
    dout = np.full((1, 1, 1, 1), 3.0)
    _, dx = forward_backward(TECHNIQUES["pool"][name], (x,), dout)
    np.testing.assert_array_equal(dx, [[[[3.0, 0.0], [0.0, 0.0]]]])


def test_run_lab_times_forward_and_backward_apart():
    rows = run_lab(sizes=TINY, repeats=2)
    for layer, table in TECHNIQUES.items():
        assert [r["technique"] for r in rows if r["layer"] == layer] == list(table)
    for r in rows:
        assert r["agrees"] and r["forward_s"] > 0 and r["backward_s"] > 0
        assert r["seconds"] == pytest.approx(r["forward_s"] + r["backward_s"])
        assert 0 <= r["max_diff"] < 1e-12
    loops = [r for r in rows if r["technique"] == "loops"]
    assert len(loops) == 3
    for r in loops:
        for key in ("forward_speedup", "backward_speedup", "speedup"):
            assert r[key] == pytest.approx(1.0)
    assert run_lab(["pool"], sizes=TINY, repeats=1)[0]["layer"] == "pool"


def test_run_lab_float32():
    rows = run_lab(["dense"], sizes=TINY, repeats=1, dtype=np.float32, rtol=1e-5)
    assert all(r["max_diff"] < 1e-5 for r in rows)


def test_a_disagreeing_technique_is_named(monkeypatch):
    def wrong_backward(dout, cache):
        (dx,) = TECHNIQUES["pool"]["fast"].backward(dout, cache)
        return (dx + 1.0,)

    fast = TECHNIQUES["pool"]["fast"]
    table = {**TECHNIQUES["pool"], "wrong": Technique(fast.forward, wrong_backward)}
    monkeypatch.setitem(techniques.TECHNIQUES, "pool", table)
    with pytest.raises(AssertionError, match=r"pool/wrong: dx differs by 0\.\d+"):
        run_lab(["pool"], sizes=TINY, repeats=1)


def test_format_table_columns_and_rows():
    rows = run_lab(["pool"], sizes=TINY, repeats=1)
    lines = format_table(rows).splitlines()
    assert len(lines) == 2 + len(TECHNIQUES["pool"])
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert header == [
        "layer",
        "technique",
        "forward (s)",
        "speed-up",
        "backward (s)",
        "speed-up",
        "total (s)",
        "speed-up",
        "max diff",
    ]
    assert len({len(line) for line in lines}) == 1  # aligned
    assert lines[1].startswith("|---") and lines[1].endswith(":|")
    cells = [c.strip() for c in lines[2].strip("|").split("|")]
    assert cells[:2] == ["pool", "loops"] and cells[3] == "1.0x"


def test_run_lab_network_sizes_skip_the_python_loops():
    small = {"conv": {"N": 2, "C": 2, "H": 6, "F": 3}, "dense": {"N": 3, "I": 5}}
    rows = run_lab(["dense", "conv"], sizes=small, repeats=1, network=True)
    names = {(r["layer"], r["technique"]) for r in rows}
    assert ("conv", "loops") not in names and ("conv", "einsum/pos") not in names
    assert ("conv", "einsum") in names and ("conv", "fast") in names
    firsts = [r for r in rows if r["speedup"] == 1.0 and r["max_diff"] == 0.0]
    assert {r["technique"] for r in firsts} == {"einsum"}
