"""How graph models are put together and refused (cnnumpy/graph.py, Model.__init__,
Model.from_config, model files of graph models) and how ``summary`` shows them."""

import json
import re

import graph_blocks
import numpy as np
import pytest

import cnnumpy
from cnnumpy import layers as L
from cnnumpy import saving
from cnnumpy.saving import ModelFileError
from cnnumpy.saving.loading import load_model
from cnnumpy.saving.safefile import dump_bytes
from cnnumpy.sequential import model_from_config

TENSOR = r"<Tensor \(N, 4\) from Input>"


# -- building --------------------------------------------------------------------------
def test_a_layer_called_twice_is_refused():
    dense = L.Dense(3)
    dense(cnnumpy.Input((4,)))
    with pytest.raises(ValueError, match=r"Dense\(3\) is already used in a graph"):
        dense(cnnumpy.Input((4,)))


def _unused_input():
    x1, x2 = cnnumpy.Input((4,)), cnnumpy.Input((4,))
    return cnnumpy.Model([x1, x2], L.Dense(2)(x1))


def _foreign_input():
    x, other = cnnumpy.Input((4,)), cnnumpy.Input((4,), name="other")
    return cnnumpy.Model(x, L.Dense(2)(other))


def _hidden_as_input():
    h = L.Dense(2)(cnnumpy.Input((4,)))
    return cnnumpy.Model(h, L.Dense(1)(h))


def _input_twice():
    x = cnnumpy.Input((4,))
    return cnnumpy.Model([x, x], L.Dense(2)(x))


def _built_for_other_shape():
    dense = L.Dense(3)
    dense.forward(np.zeros((2, 5)))
    return dense(cnnumpy.Input((4,)))


X4 = cnnumpy.Input((4,))
REFUSED = {  # what is built -> (error, message)
    "foreign-input": (
        _foreign_input,
        ValueError,
        rf"Model: an output depends on {TENSOR} \(other\), which is not among",
    ),
    "unused-input": (
        _unused_input,
        ValueError,
        r"Model: no output depends on inputs\[1\]",
    ),
    "hidden-as-input": (
        _hidden_as_input,
        ValueError,
        r"inputs\[0\] is <Tensor \(N, 2\) from Dense\(2\)>, not a cnnumpy.Input",
    ),
    "input-twice": (_input_twice, ValueError, r"Model: inputs\[1\] is given twice"),
    "mixed-call": (
        lambda: L.Add()([X4, np.zeros((2, 4))]),
        TypeError,
        r"Add\(\): cannot mix symbolic Tensors and arrays in a call",
    ),
    "two-to-dense": (
        lambda: L.Dense(2)([X4, X4]),
        TypeError,
        r"Dense\(2\): takes one Tensor, got a list of 2",
    ),
    "one-to-add": (
        lambda: L.Add()([X4]),
        TypeError,
        r"Add\(\): expected a list of two or more Tensors",
    ),
    "array-as-inputs": (
        lambda: cnnumpy.Model(np.zeros((2, 4)), L.Dense(1)(X4)),
        TypeError,
        "Model: inputs must be a Tensor or a list of Tensors",
    ),
    "no-outputs": (
        lambda: cnnumpy.Model(X4, []),
        TypeError,
        "Model: outputs must be a Tensor or a list",
    ),
    "add-shapes": (
        lambda: L.Add()([cnnumpy.Input((3,)), X4]),
        ValueError,
        r"Add\(\): the input shapes \[\(3,\), \(4,\)\] do not broadcast",
    ),
    "conv-rank": (
        lambda: L.Conv2D(2, 3)(X4),
        ValueError,
        r"Conv2D\(2, 3\): expected input shape \(C, H, W\)",
    ),
    "built-shape": (
        _built_for_other_shape,
        ValueError,
        r"Dense\(3\): expected input \(N, 5\), got \(N, 4\)",
    ),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_bad_graphs_are_refused(case):
    build, error, message = REFUSED[case]
    with pytest.raises(error, match=message):
        build()


@pytest.mark.parametrize(
    "shape",
    [(0, 3), (), "abc", (3.0,), (True,), -1, [2, -2], None],
    ids=["zero", "empty", "str", "float", "bool", "negative", "list", "none"],
)
def test_input_with_a_bad_shape(shape):
    message = r"Input: shape must be positive sizes without the batch axis, such as "
    with pytest.raises(ValueError, match=message + r"\(3, 32, 32\), got"):
        cnnumpy.Input(shape)


def test_input_shape_as_an_int_and_bad_dtype():
    assert cnnumpy.Input(5).shape == (5,)
    with pytest.raises(ValueError, match="Input: dtype must be 'float' or 'int', got"):
        cnnumpy.Input((3,), dtype="float32")


def test_layer_order_sources_and_outputs():
    model = graph_blocks.residual("conv")
    names = [la.name for la in model.layers]
    assert names.index("conv1") < names.index("conv2") < names.index("fc")
    add = next(j for j, la in enumerate(model.layers) if isinstance(la, L.Add))
    reads = [model.layers[s - 1].name for s in model.sources[add]]
    assert reads == ["bn2", "short"]
    assert model.output_ids == [1 + len(model.layers) - 1]
    for j, srcs in enumerate(model.sources):
        assert all(s < 1 + j for s in srcs)  # each layer after what it reads


# -- from_config and model files -------------------------------------------------------
def _config():
    return graph_blocks.residual("conv").get_config()


def _corrupt(change):
    config = json.loads(json.dumps(_config()))
    change(config)
    return config


def _set(key, value, index=None):
    """A change of ``config[key]`` (or of its entry ``index``) to ``value``."""

    def change(config):
        if index is None:
            config[key] = value
        else:
            config[key][index] = value

    return change


# residual("conv"): 0 conv1, 1 bn1, 2 relu, 3 conv2, 4 bn2, 5 short, 6 Add, 7 relu,
# 8 pool, 9 fc; values 0 (the input) to 10. Each case: (change, message).
READS = r"must read from inputs or earlier layers"
CORRUPT = {
    "later-value": (_set("sources", [5], 2), rf"layer 2 {READS} \(values 0 to 2\)"),
    "self": (_set("sources", [4], 3), rf"layer 3 {READS} .* got \[4\]"),
    "negative": (_set("sources", [-1], 0), rf"layer 0 {READS}"),
    "add-one-source": (
        _set("sources", [5], 6),
        r"layer 6 \(Add\(\)\) reads two or more values, got \[5\]",
    ),
    "dense-two-sources": (
        _set("sources", [8, 8], 9),
        r"layer 9 \(Dense\(5, name='fc'\)\) reads one value, got \[8, 8\]",
    ),
    "sources-length": (
        lambda config: config["sources"].pop(),
        r"'sources' must list where each of the 10 layers reads from",
    ),
    "output-range": (_set("outputs", [11]), r"outputs must be values 0 to 10, got"),
    "output-empty": (_set("outputs", []), r"'outputs' must be a non-empty list"),
    "output-str": (_set("outputs", ["10"]), r"outputs must be values 0 to 10"),
    "input-shape": (
        _set("inputs", {"shape": [3, 0, 6]}, 0),
        r"inputs\[0\] must have a 'shape' of sizes >= 1",
    ),
    "no-inputs": (_set("inputs", []), r"'inputs' must be a non-empty list"),
    "dead-layer": (  # layer 9 becomes a dead end
        _set("outputs", [9]),
        r"layer 9 \(.*\) leads to no output",
    ),
    "shapes": (  # fc reads conv1's maps
        _set("sources", [1], 9),
        r"Dense\(5, name='fc'\): expected input \(N, features\)",
    ),
}


@pytest.mark.parametrize("case", list(CORRUPT))
def test_from_config_refuses_corrupted_graphs(case):
    change, message = CORRUPT[case]
    with pytest.raises(ValueError, match=message):
        cnnumpy.Model.from_config(_corrupt(change))


def test_from_config_round_trip_and_model_from_config():
    config = _config()
    model = model_from_config(json.loads(json.dumps(config)))
    assert type(model) is cnnumpy.Model and model.get_config() == config
    sequential = cnnumpy.Sequential([L.Dense(2)], input_shape=(3,))
    assert type(model_from_config(sequential.get_config())) is cnnumpy.Sequential


def _saved(tmp_path):
    model = graph_blocks.residual("conv")
    model.compile("sgd", "cross_entropy")
    x = np.random.default_rng(0).standard_normal((4, 3, 6, 6))
    model.fit(x, np.arange(4), epochs=1, verbose=0)
    path = tmp_path / "graph.safetensors"
    model.save(path)
    return model, path, x


def test_graph_model_file_round_trip(tmp_path):
    model, path, x = _saved(tmp_path)
    loaded = load_model(path)
    assert type(loaded) is cnnumpy.Model and loaded.sources == model.sources
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


@pytest.mark.parametrize(
    "case",
    [
        "later-value",
        "add-one-source",
        "output-range",
        "input-shape",
        "dead-layer",
        "shapes",
    ],
)
def test_load_model_of_a_corrupted_graph_file(tmp_path, case):
    _, path, _ = _saved(tmp_path)
    tensors, meta = saving.load_bytes(path.read_bytes())
    for key in ("format", "format_version", "sha256"):
        meta.pop(key)
    change, message = CORRUPT[case]
    change(meta["model"])
    path.write_bytes(dump_bytes(tensors, meta))  # a valid checksum, a bad graph
    with pytest.raises(ModelFileError, match="graph.safetensors") as error:
        load_model(path)
    assert re.search(message, str(error.value)), str(error.value)


# -- summary ---------------------------------------------------------------------------
def test_summary_of_a_graph_has_row_numbers_and_reads():
    model = graph_blocks.residual("conv")
    text = model.summary(print_fn=None)
    lines = text.splitlines()
    header = next(line for line in lines if "Layer" in line)
    assert header.split()[0] == "#" and header.split()[-1] == "Reads"
    rows = {line.split()[0]: line for line in lines if line[:1].isdigit()}
    assert len(rows) == len(model.layers)
    assert rows["0"].endswith("input") and rows["6"].endswith("#4, #5")
    assert f"Total parameters: {model.count_params():,}" in text
    assert "Total neurons:" in text and "Training step on 32 examples" in text


def test_summary_of_several_inputs_names_them():
    cnnumpy.seed(0)
    a, b = cnnumpy.Input((2,)), cnnumpy.Input((3,))
    model = cnnumpy.Model([a, b], L.Concatenate()([a, L.Dense(2)(b)]))
    text = model.summary(print_fn=None)
    assert "input (2) (3)" in text
    concat = next(line for line in text.splitlines() if "Concatenate" in line)
    assert concat.endswith("input 0, #0")


def test_sequential_keeps_its_table():
    model = cnnumpy.Sequential([L.Dense(4), L.ReLU(), L.Dense(2)], input_shape=(3,))
    printed = []
    text = model.summary(print_fn=printed.append)
    assert printed == [text]
    header = next(line for line in text.splitlines() if "Layer" in line)
    assert header.split()[0] == "Layer" and "Reads" not in text and "#" not in text
    assert "Model: Sequential" in text and "Total parameters: 26" in text
