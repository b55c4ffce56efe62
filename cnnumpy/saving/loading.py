"""``load_model``: a new model, rebuilt from a model file.

The one module of ``cnnumpy.saving`` that imports the model (``model_from_config``
builds it); the package does not import it (``Model.save`` imports the writer),
``cnnumpy.load_model`` is this module's function. A file of a few bytes can describe
``Dense(10**9)``, so the architecture's tensor shapes are planned from the layers'
configs alone and checked against the header before anything is built; the build
then runs under
``cnnumpy.rng.isolated`` (loading never changes what a seeded run draws next), and
every tensor, value and setting is checked (``cnnumpy.saving.reading``) before the
first one is set.
"""

from __future__ import annotations

import warnings

from cnnumpy import initializers, losses
from cnnumpy.layers import layer_from_config
from cnnumpy.model import Model
from cnnumpy.rng import isolated
from cnnumpy.saving.checks import check_tensors, planned_tensors
from cnnumpy.saving.header import ModelFileError
from cnnumpy.saving.preprocessing import check_preprocessing
from cnnumpy.saving.reading import assign_weights, read_checked, saved_state
from cnnumpy.saving.safefile import open_model_file
from cnnumpy.sequential import model_from_config

__all__ = ["load_model"]


def load_model(path) -> Model:
    """Rebuild a model from ``save_model``: architecture, weights, optimiser, history.

    The model is built from the metadata and every declared tensor checked against it
    before the tensors are read; their values are checked before they are set.

    Raises:
        ModelFileError: the file is truncated, corrupted, not a cnnumpy file,
            inconsistent, holds non-finite weights, or is from a newer format version.
    """
    where = f"load_model({str(path)!r})"
    with open_model_file(path, where) as model_file:
        meta = model_file.metadata
        model = _model_from_meta(meta, model_file.declared, where)
        optimizer, tensors = read_checked(model_file, model, where)
    rngs, history = saved_state(model, meta, optimizer, tensors, where)
    try:
        preprocessing = check_preprocessing(
            meta.get("preprocessing"), model.input_shape, where
        )
    except ValueError as exc:
        raise ModelFileError(str(exc)) from None
    assign_weights(model, tensors, rngs)
    model.preprocessing = preprocessing
    _compile_from_meta(model, meta, where)
    model.optimizer = optimizer
    model.history = history
    return model


def layers_from_meta(meta: dict, where: str) -> list:
    """The (unbuilt) layers the metadata's ``"model"`` entry describes, each made by
    ``layer_from_config``; a ModelFileError naming ``where`` if it is bad."""
    spec = meta.get("model")
    if not isinstance(spec, dict) or not isinstance(spec.get("layers"), list):
        raise ModelFileError(f"{where}: the file has no architecture (weights only?)")
    layers = []
    for i, entry in enumerate(spec["layers"]):
        try:
            layers.append(layer_from_config(entry, i))
        except ValueError as exc:
            raise ModelFileError(f"{where}: {exc}") from None
    return layers


def _model_from_meta(meta: dict, declared: dict, where: str) -> Model:
    """A new built model of the saved architecture, its tensors not yet set.

    The layers' tensor shapes are first checked, from their configs alone, against
    the tensors the header declares: building allocates and initialises every layer.
    """
    layers = layers_from_meta(meta, where)
    spec = meta["model"]
    check_tensors(planned_tensors(layers, spec, where), declared, where)
    try:
        # weights_follow: a layer built with a callable (saved as "custom") gets its
        # weights from the file, which assign_weights sets before anyone reads them
        with isolated(), initializers.weights_follow():
            model = model_from_config(spec)
    except (TypeError, ValueError, KeyError, OverflowError, MemoryError) as exc:
        raise ModelFileError(
            f"{where}: the architecture cannot be built: {exc!r}"
        ) from None
    return model


def _compile_from_meta(model, meta: dict, where: str) -> None:
    """Set the saved loss and metrics, or warn and leave the model uncompiled."""
    compiled = meta.get("compile")
    if not isinstance(compiled, dict):
        return
    try:
        loss = losses.get(compiled["loss"])
        model.check_loss(loss, where)  # a loss saved for other outputs: warned below
        model.loss = loss
        model.metrics = model.metric_functions(compiled.get("metrics", []))
    except (KeyError, ValueError, TypeError) as exc:
        # e.g. a user's own Loss class: the weights are still good
        warnings.warn(
            f"{where}: loaded without loss and metrics ({exc}); call compile()",
            stacklevel=3,
        )
        model.loss, model.metrics = None, {}
