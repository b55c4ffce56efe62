"""Callbacks: code ``fit`` calls at the start and end of training, epochs and batches.

Write your own by subclassing ``Callback`` and overriding any ``on_*`` method, or pass
functions to ``LambdaCallback(on_epoch_end=lambda epoch, logs: ...)``. ``self.model`` is
the model being trained; setting ``self.model.stop_training = True`` ends training after
the current epoch.

- :mod:`~cnnumpy.callbacks.base`: ``Callback``, ``LambdaCallback``, ``History``.
- :mod:`~cnnumpy.callbacks.monitoring`: ``EarlyStopping``, ``ReduceLROnPlateau``,
  ``LearningRateScheduler`` (per epoch), ``StepScheduler`` (per optimiser step),
  ``TerminateOnNaN``.
- :mod:`~cnnumpy.callbacks.averaging`: ``EMA``, a moving average of the weights.
- :mod:`~cnnumpy.callbacks.files`: ``CSVLogger``, ``ModelCheckpoint``.
- :mod:`~cnnumpy.callbacks.instrumentation`: ``BatchLossHistory``, ``GradientStats``;
  :mod:`~cnnumpy.callbacks.timing`: ``LayerTimer`` (seed 000's measurements).
"""

from cnnumpy.callbacks.averaging import EMA
from cnnumpy.callbacks.base import Callback, History, LambdaCallback
from cnnumpy.callbacks.files import CSVLogger, ModelCheckpoint
from cnnumpy.callbacks.instrumentation import BatchLossHistory, GradientStats
from cnnumpy.callbacks.monitoring import (
    EarlyStopping,
    LearningRateScheduler,
    ReduceLROnPlateau,
    StepScheduler,
    TerminateOnNaN,
)
from cnnumpy.callbacks.timing import LayerTimer

__all__ = [
    "BatchLossHistory",
    "CSVLogger",
    "Callback",
    "EMA",
    "EarlyStopping",
    "GradientStats",
    "History",
    "LambdaCallback",
    "LayerTimer",
    "LearningRateScheduler",
    "ModelCheckpoint",
    "ReduceLROnPlateau",
    "StepScheduler",
    "TerminateOnNaN",
]
