"""Loads DuckDB with Ctrl-C (and SIGTERM) held back until its extension has started.

DuckDB's extension is built with nanobind, which aborts the whole process (SIGABRT,
no message, no exit code) when a KeyboardInterrupt lands while it registers its types,
and again when a cut-short import is tried a second time. So the first `import duckdb`
runs with SIGINT recorded instead of raised; a Ctrl-C that came meanwhile is raised
right after, as a KeyboardInterrupt the CLI turns into its one-line message. The import
takes about 0.1 s. Every module that uses DuckDB imports this one first.
"""

from __future__ import annotations

import signal
import sys
import threading
from types import FrameType

from . import _ctrlc


def _load() -> None:
    if "duckdb" in sys.modules or threading.current_thread() is not threading.main_thread():
        import duckdb  # noqa: F401 - only the main thread takes signals

        return
    held: list[int] = []

    def hold(signum: int, _frame: FrameType | None) -> None:
        _ctrlc.taken()
        held.append(signum)

    # SIGTERM too: the CLI's handler raises KeyboardInterrupt for it as well (a shutdown,
    # a service manager's stop), and nanobind aborts the same way.
    previous = {sig: signal.signal(sig, hold) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        import duckdb  # noqa: F401
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if held:  # taken now; a SIGTERM first, for it says how to end (143, "terminated")
        signal.raise_signal(signal.SIGTERM if signal.SIGTERM in held else held[0])


_load()
