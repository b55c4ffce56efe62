"""Faults of the model-file code found by trying to break it.

Saving onto special files and symlinks, PyTorch state dicts with bad entries, and model
files crafted to make loading allocate or read far more than they hold. The files that
could exhaust memory (64 GB sparse files, layers of 10**9 units) are loaded in a child
process whose address space is capped at 1 GiB, so that a regression fails the test
instead of the machine.
"""

import errno
import json
import os
import socket
import stat
import subprocess
import sys
import time

import numpy as np
import pytest

import cnnumpy
from cnnumpy import saving
from cnnumpy.layers import BatchNorm, Conv1D, Conv2D, Dense, Flatten, ReLU
from cnnumpy.saving import ModelFileError
from cnnumpy.saving.interop import from_torch_state_dict, to_torch_state_dict
from cnnumpy.saving.loading import load_model
from cnnumpy.saving.safefile import dump_bytes

GIB = 2**30


def small_model(seed=0):
    cnnumpy.seed(seed)
    return cnnumpy.Sequential([Flatten(), Dense(2)], input_shape=(10,))


def torch_twin_model(seed=0):
    """Conv2D, BatchNorm (with running statistics) and Dense (transposed W)."""
    cnnumpy.seed(seed)
    return cnnumpy.Sequential(
        [Conv2D(3, 3), BatchNorm(), ReLU(), Flatten(), Dense(4)],
        input_shape=(2, 5, 5),
    )


def weights_of(model):
    return [{k: v.copy() for k, v in layer.items()} for layer in model.get_weights()]


def assert_same_weights(before, model):
    for a, b in zip(before, model.get_weights(), strict=True):
        assert a.keys() == b.keys()
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])


def rewrite(path, meta_changes=None, tensors=None):
    """Re-save a model file with edited metadata and tensors and a valid checksum."""
    old_tensors, meta = saving.load_bytes(path.read_bytes())
    for key in ("format", "format_version", "sha256"):
        meta.pop(key)
    meta.update(meta_changes or {})
    path.write_bytes(dump_bytes(old_tensors if tensors is None else tensors, meta))


# -- 1. saving onto special files and through symlinks ---------------------------------
def test_save_writes_through_a_symlink_and_keeps_it(tmp_path):
    (tmp_path / "store").mkdir()
    (tmp_path / "links").mkdir()
    target = tmp_path / "store" / "model.safetensors"
    small_model(seed=1).save(target)
    link = tmp_path / "links" / "latest.safetensors"
    link.symlink_to(os.path.join("..", "store", "model.safetensors"))
    model = small_model(seed=2)
    model.save(link)
    assert link.is_symlink() and os.readlink(link) == "../store/model.safetensors"
    assert_same_weights(model.get_weights(), load_model(target))
    assert sorted(p.name for p in (tmp_path / "store").iterdir()) == [target.name]
    assert sorted(p.name for p in (tmp_path / "links").iterdir()) == [link.name]


def test_save_through_a_dangling_symlink_creates_its_target(tmp_path):
    link = tmp_path / "latest.safetensors"
    link.symlink_to("run-7.safetensors")
    model = small_model()
    model.save(link)
    assert link.is_symlink()
    assert_same_weights(model.get_weights(), load_model(tmp_path / "run-7.safetensors"))


def test_save_through_a_dangling_symlink_needs_the_target_folder(tmp_path):
    link = tmp_path / "latest.safetensors"
    link.symlink_to(tmp_path / "gone" / "model.safetensors")
    with pytest.raises(FileNotFoundError, match="dangling symlink .*gone"):
        small_model().save(link)
    assert link.is_symlink() and not (tmp_path / "gone").exists()


def make_fifo(path):
    os.mkfifo(path)


def make_socket(path):
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.close()  # the socket file stays


def make_directory(path):
    path.mkdir()


@pytest.mark.parametrize(
    "make, kind, is_kind",
    [
        (make_fifo, "FIFO", stat.S_ISFIFO),
        (make_socket, "socket", stat.S_ISSOCK),
        (make_directory, "directory", stat.S_ISDIR),
    ],
)
@pytest.mark.parametrize("through_symlink", [False, True])
def test_save_refuses_special_files(tmp_path, make, kind, is_kind, through_symlink):
    special = tmp_path / "special"
    make(special)
    path = special
    if through_symlink:
        path = tmp_path / "link.safetensors"
        path.symlink_to(special)
    with pytest.raises(OSError, match=f"{path}.* {kind}, not a regular"):
        small_model().save(path)
    assert is_kind(os.stat(special).st_mode)
    assert path.is_symlink() == through_symlink
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_save_refuses_a_device_node(tmp_path):
    device = tmp_path / "null"
    try:  # a second node of /dev/null, which a test may harm
        os.mknod(device, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except (PermissionError, OSError) as exc:
        pytest.skip(f"cannot make a device node here: {exc}")
    with pytest.raises(OSError, match="character device"):
        small_model().save(device)
    assert stat.S_ISCHR(os.stat(device).st_mode)


def test_save_to_dev_null_is_refused_and_dev_null_survives(monkeypatch):
    if not stat.S_ISCHR(os.stat("/dev/null").st_mode):
        pytest.skip("no /dev/null character device here")
    real_replace, real_rename = os.replace, os.rename

    def guard(real):  # whatever the code does, /dev/null is never replaced
        def move(src, dst, *args, **kwargs):
            if os.path.realpath(dst) == "/dev/null":
                raise OSError("test guard: refusing to replace /dev/null")
            return real(src, dst, *args, **kwargs)

        return move

    monkeypatch.setattr(os, "replace", guard(real_replace))
    monkeypatch.setattr(os, "rename", guard(real_rename))
    with pytest.raises(OSError, match="/dev/null is a character device"):
        small_model().save("/dev/null")
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    assert not [name for name in os.listdir("/dev") if name.startswith(".null.")]


def test_save_errors_name_the_destination_not_the_temporary_file(tmp_path, monkeypatch):
    path = tmp_path / "model.safetensors"

    def cross_device(src, dst):
        raise OSError(errno.EXDEV, os.strerror(errno.EXDEV), src, dst)

    monkeypatch.setattr(os, "replace", cross_device)
    with pytest.raises(
        OSError, match=r"(?i)cross-device link: '.*model\.safetensors'"
    ) as info:
        small_model().save(path)
    assert str(path) in str(info.value) and ".tmp" not in str(info.value)
    assert list(tmp_path.iterdir()) == []


# -- 4. from_torch_state_dict is all-or-nothing and takes only finite floats ----------
def good_state_dict(seed=5):
    return to_torch_state_dict(torch_twin_model(seed))


def last_key(state_dict):
    return [k for k in state_dict if not k.endswith("num_batches_tracked")][-1]


@pytest.mark.parametrize(
    "value, error, message",
    [
        (None, TypeError, r"4.bias: expected a float array .*, got None"),
        (np.arange(4), TypeError, "4.bias: expected a float array .*dtype int64"),
        (np.ones(4, bool), TypeError, "4.bias: expected a float array .*dtype bool"),
        (np.ones(4, complex), TypeError, "4.bias: .*dtype complex128"),
        (np.array([1.0, None, 2.0, 3.0]), TypeError, "4.bias: .*dtype object"),
        ([0.0, 1.0, 2.0, 3.0], TypeError, "4.bias: .*got list"),
        (np.array([0.0, np.nan, 0, 0]), ValueError, "4.bias holds 1 non-finite"),
        (np.array([np.inf, 0, -np.inf, 0]), ValueError, "4.bias holds 2 non-finite"),
        (np.full(4, 1e300), ValueError, "4.bias holds 4 non-finite .* float32"),
        (np.zeros(5, np.float32), ValueError, r"4.bias has shape \(5,\), expected"),
    ],
)
def test_from_torch_state_dict_refuses_bad_entries_before_writing(
    value, error, message
):
    model = torch_twin_model()
    before = weights_of(model)
    state_dict = good_state_dict()
    assert last_key(state_dict) == "4.bias"
    state_dict["4.bias"] = value
    with pytest.raises(error, match=message):
        from_torch_state_dict(model, state_dict)
    assert_same_weights(before, model)  # the earlier layers were not overwritten


def test_from_torch_state_dict_accepts_finite_floats_of_any_width():
    source = torch_twin_model(seed=5)
    state_dict = {
        k: v.astype(np.float64) if k.endswith("weight") else v.astype(np.float16)
        for k, v in good_state_dict().items()
        if not k.endswith("num_batches_tracked")
    }
    model = torch_twin_model()
    from_torch_state_dict(model, state_dict)
    np.testing.assert_array_equal(
        model.layers[0].params["W"], source.layers[0].params["W"]
    )
    assert model.layers[4].params["b"].dtype == np.float32


@pytest.mark.torch
def test_from_torch_state_dict_checks_torch_tensors_too():
    torch = pytest.importorskip("torch")
    state_dict = {k: torch.from_numpy(v) for k, v in good_state_dict().items()}
    state_dict["0.weight"].requires_grad_(True)
    model = torch_twin_model()
    from_torch_state_dict(model, state_dict)
    np.testing.assert_array_equal(
        model.layers[0].params["W"], state_dict["0.weight"].detach().numpy()
    )
    before = weights_of(torch_twin_model())
    for bad, message in [
        (torch.arange(4), "4.bias: expected a float array .*dtype int64"),
        (torch.ones(4, dtype=torch.bool), "4.bias: .*dtype bool"),
        (torch.ones(4, dtype=torch.complex64), "4.bias: .*dtype complex64"),
        (torch.ones(4, dtype=torch.bfloat16), "4.bias: .*bfloat16"),
        (torch.tensor([0.0, float("nan"), 0.0, 0.0]), "4.bias holds 1 non-finite"),
    ]:
        model = torch_twin_model()
        with pytest.raises((TypeError, ValueError), match=message):
            from_torch_state_dict(model, {**state_dict, "4.bias": bad})
        assert_same_weights(before, model)


def test_from_torch_state_dict_needs_a_mapping():
    with pytest.raises(TypeError, match="expected a dict .*, got list"):
        from_torch_state_dict(torch_twin_model(), [("0.weight", np.zeros(3))])


# -- 5. and 6.: files crafted to make loading allocate or read too much ----------------
CHILD = """
import json, resource, sys, time, tracemalloc

resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))
import cnnumpy
from cnnumpy import saving
from cnnumpy.layers import Dense, Flatten

path, loader = sys.argv[1], sys.argv[2]
model = cnnumpy.Sequential([Flatten(), Dense(2)], input_shape=(10,))
load = {{
    "load_model": lambda: cnnumpy.load_model(path),
    "load_weights": lambda: saving.load_weights(model, path),
    "restore_checkpoint": lambda: saving.restore_checkpoint(model, path),
}}[loader]
rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
tracemalloc.start()
start = time.perf_counter()
try:
    load()
    error = None
except BaseException as exc:
    error = f"{{type(exc).__name__}}: {{exc}}"
seconds = time.perf_counter() - start
peak = tracemalloc.get_traced_memory()[1]
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before
print(json.dumps({{"error": error, "seconds": seconds, "peak": peak, "rss_kb": rss}}))
"""


def load_in_a_small_child(path, loader="load_model"):
    """Load ``path`` in a child process limited to 1 GiB of address space."""
    result = subprocess.run(
        [sys.executable, "-c", CHILD.format(limit=GIB), str(path), loader],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def assert_refused_small_and_fast(outcome, message):
    assert outcome["error"] is not None, "the file was loaded"
    assert outcome["error"].startswith("ModelFileError: "), outcome["error"]
    assert message in outcome["error"], outcome["error"]
    assert outcome["seconds"] < 2.0, outcome
    assert outcome["peak"] < 16 * 2**20, outcome  # bytes traced by tracemalloc
    assert outcome["rss_kb"] < 64 * 2**10, outcome


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "model.safetensors"
    small_model().save(path)
    return path


def with_layers(path, layers, input_shape=None):
    _, meta = saving.load_bytes(path.read_bytes())
    spec = meta["model"]
    for i, changes in layers.items():
        spec["layers"][i]["config"].update(changes)
    if input_shape is not None:
        spec["input_shape"] = input_shape
    return {"model": spec}


@pytest.mark.parametrize("units", [10**6, 10**9])
@pytest.mark.parametrize("tensors", ["none", "small"])
def test_huge_layers_in_a_tiny_file_are_refused_before_allocating(
    model_file, units, tensors
):
    small = {
        "layers.1.W": np.zeros((10, 2), np.float32),
        "layers.1.b": np.zeros(2, np.float32),
    }
    rewrite(
        model_file,
        with_layers(model_file, {1: {"units": units}}),
        {} if tensors == "none" else small,
    )
    assert model_file.stat().st_size < 4096
    outcome = load_in_a_small_child(model_file)
    expected = "layers.1.W" if tensors == "none" else f"expects (10, {units})"
    assert_refused_small_and_fast(outcome, expected)


def test_a_huge_input_shape_is_refused_before_allocating(model_file):
    rewrite(model_file, with_layers(model_file, {}, input_shape=[3, 10**5, 10**5]))
    outcome = load_in_a_small_child(model_file)
    assert_refused_small_and_fast(outcome, "3, 100000, 100000")


def test_huge_activations_with_tiny_weights_are_refused(tmp_path):
    # W (4096, 1, 1, 1) is 16 KB, but one example's output has 2**32 values
    cnnumpy.seed(0)
    model = cnnumpy.Sequential([Conv2D(4096, 1, use_bias=False)], input_shape=(1, 4, 4))
    path = tmp_path / "conv.safetensors"
    model.save(path)
    rewrite(path, with_layers(path, {}, input_shape=[1, 1024, 1024]))
    with pytest.raises(
        ModelFileError, match=r"layer 0 .*\(4096, 1024, 1024\).* 2\*\*31"
    ):
        load_model(path)


def test_exact_architectures_still_load_after_the_shape_check(tmp_path):
    cnnumpy.seed(0)
    model = cnnumpy.Sequential(
        [Conv2D(3, 3, padding=1), BatchNorm(), ReLU(), Flatten(), Dense(4)],
        input_shape=(2, 5, 5),
    )
    path = tmp_path / "m.safetensors"
    model.save(path)
    assert_same_weights(model.get_weights(), load_model(path))
    # a BatchNorm statistic of the wrong size is named before anything is built
    tensors, _ = saving.load_bytes(path.read_bytes())
    tensors["layers.1.running_var"] = np.ones(4, np.float32)
    rewrite(path, tensors=tensors)
    with pytest.raises(ModelFileError, match=r"layers.1.running_var has shape \(4,\)"):
        load_model(path)


@pytest.mark.parametrize(
    "layer, input_shape",
    [
        (Dense(3), (5,)),
        (Dense(3, use_bias=False), (5,)),
        (Conv2D(4, (3, 2), stride=2, padding=1), (2, 7, 6)),
        (Conv2D(4, 1, use_bias=False), (3, 4, 4)),
        (Conv1D(2, 3), (3, 9)),
        (BatchNorm(), (6,)),
        (BatchNorm(), (4, 5)),
        (BatchNorm(), (3, 4, 4)),
        (ReLU(), (2, 3)),
    ],
)
def test_param_shapes_are_what_build_creates(layer, input_shape):
    params, state = layer.param_shapes(input_shape), layer.state_shapes(input_shape)
    assert not layer.built and not layer.params and not layer.state
    layer.build(input_shape)
    assert params == {k: v.shape for k, v in layer.params.items()}
    assert state == {k: v.shape for k, v in layer.state.items()}


def raw_file(path, header, data=b""):
    """A safetensors file written by hand: any header, valid or not."""
    text = json.dumps(header).encode()
    path.write_bytes(len(text).to_bytes(8, "little") + text + data)


@pytest.mark.parametrize("shape", [[0, 2**62], [0, 2**40, 2**40], [0] * 70, [2**70, 0]])
def test_empty_tensors_of_absurd_shapes_are_refused(tmp_path, shape):
    path = tmp_path / "empty.safetensors"
    tensor = {"dtype": "F32", "shape": shape, "data_offsets": [0, 0]}
    meta = {"format": "cnnumpy", "format_version": "1"}
    raw_file(path, {"__metadata__": meta, "layers.0.W": tensor})
    with pytest.raises(ModelFileError, match="corrupted header entry .*layers.0.W"):
        load_model(path)


@pytest.fixture
def sparse_file(tmp_path):
    path = tmp_path / "huge.safetensors"
    yield path
    path.unlink(missing_ok=True)  # holds no blocks, but 64 GB on paper


@pytest.mark.parametrize("loader", ["load_model", "load_weights", "restore_checkpoint"])
def test_a_64_gb_sparse_file_with_a_garbage_header_is_refused_fast(sparse_file, loader):
    with open(sparse_file, "wb") as f:
        f.write(b"\xff\xee\xdd\xcc\xbb\xaa\x99\x88")
        f.truncate(64 * GIB)
    outcome = load_in_a_small_child(sparse_file, loader)
    assert_refused_small_and_fast(outcome, "header of")


@pytest.mark.parametrize("loader", ["load_model", "load_weights", "restore_checkpoint"])
def test_a_64_gb_sparse_file_after_a_valid_model_is_refused_fast(
    model_file, sparse_file, loader
):
    sparse_file.write_bytes(model_file.read_bytes())
    with open(sparse_file, "r+b") as f:
        f.truncate(64 * GIB)
    outcome = load_in_a_small_child(sparse_file, loader)
    assert_refused_small_and_fast(outcome, f"{64 * GIB} bytes")


def with_a_sparse_tensor(model_file, path, name, nbytes):
    """``model_file`` plus a tensor ``name`` of ``nbytes`` declared in its header.

    The bytes are a hole: the file has exactly the size its header declares, but
    holds no blocks for them.
    """
    raw = model_file.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header, data = json.loads(raw[8 : 8 + n]), raw[8 + n :]
    offsets = [len(data), len(data) + nbytes]
    header[name] = {"dtype": "F32", "shape": [nbytes // 4], "data_offsets": offsets}
    raw_file(path, header, data)
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size + nbytes)


@pytest.mark.parametrize(
    "name, loader, message",
    [
        ("zzz", "load_model", "unexpected tensor 'zzz': a model file holds only"),
        ("extra.0.EarlyStopping.1.W", "load_model", "extra tensors declare 2147483648"),
        ("layers.1.V", "load_weights", "unexpected: ['layers.1.V']"),
        ("optimizer.1.W.m", "restore_checkpoint", "'optimizer.1.W.m': the file has no"),
    ],
    ids=["unknown", "extra", "layer", "optimizer"],
)
def test_a_2_gb_tensor_the_model_does_not_have_is_refused_before_reading(
    model_file, sparse_file, name, loader, message
):
    with_a_sparse_tensor(model_file, sparse_file, name, 2 * GIB)
    outcome = load_in_a_small_child(sparse_file, loader)
    assert_refused_small_and_fast(outcome, message)
    assert str(sparse_file) in outcome["error"]


def test_a_header_of_too_many_tensors_is_refused_while_it_is_parsed(tmp_path):
    from cnnumpy.saving.header import MAX_TENSORS

    path = tmp_path / "many.safetensors"
    empty = {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]}
    header = {"__metadata__": {"format": "cnnumpy", "format_version": "1"}}
    header.update({f"extra.{i}": empty for i in range(MAX_TENSORS + 1)})
    raw_file(path, header)
    with pytest.raises(ModelFileError, match="the header is not valid") as info:
        load_model(path)  # (stops at the first object too many: no timing asserted)
    assert f"it declares more than {MAX_TENSORS} tensors" in str(info.value)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("loader", ["load_model", "load_weights", "restore_checkpoint"])
def test_trailing_bytes_are_refused_with_the_sizes(model_file, loader):
    size = model_file.stat().st_size
    with open(model_file, "ab") as f:
        f.write(b"\0")
    model = small_model()
    load = {
        "load_model": lambda: load_model(model_file),
        "load_weights": lambda: saving.load_weights(model, model_file),
        "restore_checkpoint": lambda: saving.restore_checkpoint(model, model_file),
    }[loader]
    with pytest.raises(ModelFileError, match=f"has {size + 1} bytes, .* {size}"):
        load()


@pytest.mark.parametrize("special", ["fifo", "directory", "/dev/zero"])
def test_loading_refuses_special_files_without_reading_them(tmp_path, special):
    path = tmp_path / "special"
    if special == "fifo":
        os.mkfifo(path)  # opening it for reading must not wait for a writer
    elif special == "directory":
        path.mkdir()
    else:
        path = special
    kind = {"fifo": "FIFO", "directory": "directory"}.get(special, "character device")
    start = time.perf_counter()
    with pytest.raises(ModelFileError, match=f"{path}.* is a {kind}, not a model file"):
        load_model(path)
    assert time.perf_counter() - start < 1.0
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_model(tmp_path / "missing.safetensors")


def test_load_errors_name_neither_temporary_files_nor_numpy(model_file):
    original = model_file.read_bytes()
    rng = np.random.default_rng(0)
    for offset in rng.integers(0, len(original), 60):
        corrupted = bytearray(original)
        corrupted[offset] ^= 0xFF
        model_file.write_bytes(bytes(corrupted))
        with pytest.raises(
            ModelFileError, match=r"^load_model\('.*model\.safetensors'\): "
        ) as info:
            load_model(model_file)
        text = str(info.value)
        assert str(model_file) in text
        assert ".tmp" not in text and "numpy" not in text.lower(), text


def test_a_users_own_layer_with_parameters_still_loads(tmp_path):
    """A layer class outside cnnumpy that builds parameters without declaring their
    shapes (``param_shapes``) is checked once built, as before."""
    import cnnumpy
    from cnnumpy.layers import Flatten, Layer

    class Scale(Layer):
        def build(self, input_shape):
            self.params = {"s": np.full(input_shape, 2.0, dtype=self.dtype)}
            super().build(input_shape)

        def forward(self, x, training=False):
            return x * self.params["s"]

    model = cnnumpy.Sequential([Flatten(), Scale()], input_shape=(1, 2, 2))
    model.layers[1].params["s"][...] = 3.0
    path = tmp_path / "custom.safetensors"
    model.save(path)
    loaded = cnnumpy.load_model(path)
    np.testing.assert_array_equal(loaded.layers[1].params["s"], np.full((4,), 3.0))


@pytest.mark.parametrize("shape", [[1.5, 4, 4], [True, 4, 4], ["1", 4, 4], [0, 4, 4]])
def test_an_odd_input_shape_in_a_file_is_refused(tmp_path, shape):
    import json

    import cnnumpy
    from cnnumpy.layers import Flatten
    from cnnumpy.saving.safefile import dump_bytes, load_bytes

    model = cnnumpy.Sequential([Flatten()], input_shape=(1, 4, 4))
    path = tmp_path / "m.safetensors"
    model.save(path)
    tensors, meta = load_bytes(path.read_bytes())
    meta = {
        k: v for k, v in meta.items() if k not in ("format", "format_version", "sha256")
    }
    meta["model"]["input_shape"] = shape
    path.write_bytes(dump_bytes(tensors, meta))
    with pytest.raises(
        cnnumpy.ModelFileError, match=r"input_shape must be a list of ints >= 1"
    ):
        cnnumpy.load_model(path)
    json.dumps(shape)  # the crafted value was valid JSON
