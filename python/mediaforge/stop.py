"""Ctrl-C held back while something must not be cut in half: a file being changed, a
report being printed, an interrupted scan being recorded. Inside `Stop()`, SIGINT only
sets `requested`; the code decides when to stop."""

from __future__ import annotations

import contextlib
import signal
from typing import Any

from . import _ctrlc


class Stop:
    """SIGINT sets `requested` instead of raising KeyboardInterrupt, until the block ends."""

    def __init__(self) -> None:
        self.requested = False
        self._old: Any = None

    def __enter__(self) -> Stop:
        _ctrlc.hold()
        with contextlib.suppress(ValueError):  # not the main thread: Ctrl-C is not ours to take
            self._old = signal.signal(signal.SIGINT, self._request)
        return self

    def _request(self, _signum: int, _frame: Any) -> None:
        _ctrlc.taken()
        self.requested = True

    def __exit__(self, *_exc: object) -> None:
        try:
            if self._old is not None:
                signal.signal(signal.SIGINT, self._old)
        finally:
            _ctrlc.release()
