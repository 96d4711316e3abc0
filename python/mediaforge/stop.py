"""Ctrl-C held back while something must not be cut in half: a file being changed, a
report being printed, an interrupted scan being recorded. Inside `Stop()`, SIGINT only
sets `requested`; the code decides when to stop."""

from __future__ import annotations

import contextlib
import signal
from typing import Any

from . import _ctrlc, _entry


class Stop:
    """SIGINT and SIGTERM set `requested` instead of raising KeyboardInterrupt, until the
    block ends (a SIGTERM is remembered, so the command still ends as terminated)."""

    def __init__(self) -> None:
        self.requested = False
        self._old: dict[int, Any] = {}

    def __enter__(self) -> Stop:
        _ctrlc.hold()
        try:
            with contextlib.suppress(ValueError):  # not the main thread: Ctrl-C is not ours to take
                for sig in (signal.SIGINT, signal.SIGTERM):
                    if signal.getsignal(sig) == signal.SIG_IGN:
                        continue  # ignored (a script's `mediaforge ... &`): it stays so
                    self._old[sig] = signal.signal(sig, self._request)
        except BaseException:
            # A Ctrl-C already on its way is raised as the first handler is set (Python
            # runs pending handlers first): before the block, so nothing is held back.
            self.__exit__()
            raise
        return self

    def _request(self, signum: int, _frame: Any) -> None:
        _ctrlc.taken()
        if signum == signal.SIGTERM:
            _entry.note_terminated()
        self.requested = True

    def __exit__(self, *_exc: object) -> None:
        try:
            for sig, old in self._old.items():
                if old is not None:  # None: set outside Python, cannot be put back
                    signal.signal(sig, old)
        finally:
            _ctrlc.release()
