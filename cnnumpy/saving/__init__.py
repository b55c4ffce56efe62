"""Model files, checkpoints and PyTorch state dicts.

- :mod:`~cnnumpy.saving.header`: a file's safetensors header, read within bounds.
- :mod:`~cnnumpy.saving.safefile`: the file format (safetensors and checked JSON).
- :mod:`~cnnumpy.saving.checks`: what a model file may hold, checked before use.
- :mod:`~cnnumpy.saving.preprocessing`: ``model.preprocessing``, checked.
- :mod:`~cnnumpy.saving.writing`: ``save_model``, ``save_weights``.
- :mod:`~cnnumpy.saving.reading`: ``load_weights``, ``restore_checkpoint``: a file
  read into an existing model.
- :mod:`~cnnumpy.saving.loading`: ``load_model``: a new model built from a file.
- :mod:`~cnnumpy.saving.interop`: PyTorch ``state_dict`` names and layouts.
- :mod:`~cnnumpy.saving.backup`: ``fit(resume_from=...)``'s folder.
"""

from cnnumpy.saving.header import ModelFileError
from cnnumpy.saving.interop import from_torch_state_dict, to_torch_state_dict
from cnnumpy.saving.preprocessing import check_preprocessing
from cnnumpy.saving.reading import load_weights, restore_checkpoint
from cnnumpy.saving.safefile import load_bytes
from cnnumpy.saving.writing import model_payload, save_model, save_weights


def __getattr__(name: str):
    """``load_model`` is imported on first use: :mod:`~cnnumpy.saving.loading` imports
    :mod:`cnnumpy.model`, which imports this package's writer (``model.save``)."""
    if name == "load_model":
        from cnnumpy.saving.loading import load_model

        return load_model
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ModelFileError",
    "check_preprocessing",
    "from_torch_state_dict",
    "load_bytes",
    "load_model",
    "load_weights",
    "model_payload",
    "restore_checkpoint",
    "save_model",
    "save_weights",
    "to_torch_state_dict",
]
