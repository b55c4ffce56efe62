"""Model files, checkpoints and PyTorch state dicts.

- :mod:`~cnnumpy.saving.header`: a file's safetensors header, read within bounds.
- :mod:`~cnnumpy.saving.safefile`: the file format (safetensors and checked JSON).
- :mod:`~cnnumpy.saving.checks`: what a model file may hold, checked before use.
- :mod:`~cnnumpy.saving.preprocessing`: ``model.preprocessing``, checked.
- :mod:`~cnnumpy.saving.writing`: ``save_model``, ``save_weights``.
- :mod:`~cnnumpy.saving.reading`: ``load_weights``, ``restore_checkpoint``: a file
  read into an existing model.
- :mod:`~cnnumpy.saving.loading`: ``load_model``: a new model built from a file (the
  one module here that imports :mod:`cnnumpy.model`, so not imported by this package:
  ``cnnumpy.load_model``).
- :mod:`~cnnumpy.saving.interop`: PyTorch ``state_dict`` names and layouts.
- :mod:`~cnnumpy.saving.backup`: ``fit(resume_from=...)``'s folder.
"""

from cnnumpy.saving.header import ModelFileError
from cnnumpy.saving.interop import from_torch_state_dict, to_torch_state_dict
from cnnumpy.saving.preprocessing import check_preprocessing
from cnnumpy.saving.reading import load_weights, restore_checkpoint
from cnnumpy.saving.safefile import load_bytes
from cnnumpy.saving.writing import save_model, save_weights

__all__ = [
    "ModelFileError",
    "check_preprocessing",
    "from_torch_state_dict",
    "load_bytes",
    "load_weights",
    "restore_checkpoint",
    "save_model",
    "save_weights",
    "to_torch_state_dict",
]
