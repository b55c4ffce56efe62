"""A per-epoch progress bar (tqdm when installed): loss, accuracy, images/s and ETA.

tqdm is an optional dependency (``pip install cnnumpy[all]``); without it training
prints only its per-epoch lines.
"""

from __future__ import annotations

import sys


def _tqdm_class():
    """tqdm's bar class, or None when tqdm is not installed.

    tqdm is imported on first use only.
    """
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - exercised only without tqdm
        return None
    return tqdm


class ProgressBar:
    """Counts examples.

    ``update(n, logs)`` advances by n and shows the running metrics.
    """

    def __init__(self, total: int, description: str, enabled: bool = True) -> None:
        self._bar = None
        tqdm = _tqdm_class() if enabled else None
        if tqdm is not None:
            self._bar = tqdm(
                total=total,
                desc=description,
                unit="img",
                leave=False,
                file=sys.stderr,
                dynamic_ncols=True,
                mininterval=0.2,
            )

    def update(self, n: int, logs: dict | None = None) -> None:
        if self._bar is None:
            return
        if logs:
            self._bar.set_postfix(
                {k: f"{v:.4f}" for k, v in logs.items()}, refresh=False
            )
        self._bar.update(n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
