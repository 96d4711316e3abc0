"""Ctrl-C while the command line's main thread waits inside DuckDB.

Python runs a signal's handler only between two bytecodes of the main thread, and a
DuckDB statement holds that thread in C code for as long as it runs. DuckDB 2.0 looks at
Python's signals now and then while it works, runs the handler there, and stops only when
the statement is over (20-40 s measured on a long join); some statements never look.

So the command line's handlers interrupt every open catalog connection before raising
KeyboardInterrupt: run inside a statement, that stops it at its next chunk of rows; run
between statements, it does nothing (DuckDB forgets an interrupt no statement received).
And a thread, woken by the signal itself (`signal.set_wakeup_fd`), interrupts them too
when no handler has run within `GRACE`: the main thread is then in C code that does not
look. Some work does not stop at a chunk (one enormous row, a catalog still opening); a
second Ctrl-C after that, while still no handler has run, ends the process at once. The
catalog is built to survive that: it survives `kill -9` at any moment.

Inside a `Stop` block the command holds Ctrl-C back on purpose (a file being changed, an
interrupted scan being recorded): nothing is interrupted then.

Only the command line's process starts the thread; a library caller's signals stay its own.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import sys
import threading
import time
import weakref
from typing import Any

from . import _entry
from ._entry import INTERRUPTED, INTERRUPTED_EXIT, TERMINATED, TERMINATED_EXIT

GRACE = 0.2  # seconds the main thread has to take a signal before DuckDB is interrupted

_catalogs: weakref.WeakSet[Any] = weakref.WeakSet()
_taken = 0  # signals the main thread's own handlers have taken
_holds = 0  # open `Stop` blocks
_started = False


def taken() -> None:
    """Every Python-level SIGINT/SIGTERM handler of the command line calls this first."""
    global _taken
    _taken += 1


def signalled() -> bool:
    """Whether a Ctrl-C (or SIGTERM) has reached the command line's handlers."""
    return _taken > 0


def _interrupt_statements() -> None:
    for catalog in list(_catalogs):
        with contextlib.suppress(Exception):  # closed meanwhile
            catalog.con.interrupt()


def hold() -> None:
    """From here to `release`, Ctrl-C is the code's own business (see `stop.Stop`)."""
    global _holds
    _holds += 1


def release() -> None:
    global _holds
    _holds -= 1


def watch(catalog: Any) -> None:
    """An open catalog whose running statement a Ctrl-C interrupts (see the module text)."""
    _catalogs.add(catalog)


def unwatch(catalog: Any) -> None:
    _catalogs.discard(catalog)


def _on_sigint(signum: int, frame: Any) -> None:
    taken()
    if not _holds:
        _interrupt_statements()
    raise KeyboardInterrupt


def _on_sigterm(signum: int, frame: Any) -> None:
    taken()
    if not _holds:
        _interrupt_statements()
    _entry._terminate(signum, frame)


def start() -> None:
    """Watch SIGINT and SIGTERM from a thread too. Main thread only, after
    `_entry.give_ctrl_c_back` has set their handlers."""
    global _started
    if _started or threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _on_sigint)
    if signal.getsignal(signal.SIGTERM) is _entry._terminate:
        signal.signal(signal.SIGTERM, _on_sigterm)
    r, w = os.pipe2(os.O_CLOEXEC)
    os.set_blocking(w, False)  # the C signal handler must never block on it
    try:
        signal.set_wakeup_fd(w, warn_on_full_buffer=False)
    except ValueError:
        os.close(r)
        os.close(w)
        return
    threading.Thread(target=_run, args=(r,), name="mediaforge-ctrl-c", daemon=True).start()
    _started = True


_STOPPING = {signal.SIGINT: (INTERRUPTED, INTERRUPTED_EXIT), signal.SIGTERM: (TERMINATED, TERMINATED_EXIT)}


def _main_spot() -> tuple[Any, int]:
    """Where the main thread is: its innermost Python frame and instruction. Both stay the
    same while it waits in C code; they change as soon as it runs Python again."""
    frame = sys._current_frames().get(threading.main_thread().ident or 0)
    return frame, (frame.f_lasti if frame is not None else -1)


def _run(r: int) -> None:
    since: float | None = None  # when the signal still pending came
    spot: tuple[Any, int] = (None, -1)  # where the main thread was then
    taken_then = 0  # `_taken` then
    interrupted = False
    while True:
        wait = None  # nothing pending: sleep until a signal comes
        if since is not None:  # until the grace ends, then often enough to see the main thread move
            wait = max(0.05, since + GRACE - time.monotonic())
        ready, _, _ = select.select([r], [], [], wait)
        now = time.monotonic()
        if ready:
            try:
                data = os.read(r, 64)
            except InterruptedError:
                continue
            signums = [s for s in data if s in _STOPPING]
            if not signums:
                continue
            stuck = since is not None and _main_spot() == spot
            if stuck and now - since >= GRACE and not _holds:
                _force(signums[-1])
            if since is None:
                since, spot, taken_then, interrupted = now, _main_spot(), _taken, False
        if since is None:
            continue
        if _main_spot() != spot:  # the main thread runs Python again: it stops its own way
            since, spot = None, (None, -1)
            continue
        if not interrupted and _taken == taken_then and not _holds and now - since >= GRACE:
            _interrupt_statements()  # no handler ran, so none did this
            interrupted = True


def _force(signum: int) -> None:
    """The second signal: end now, as a `kill -9` would, but with the message."""
    text, code = _STOPPING[signum]
    _entry.leave_now(f"{text} (stopped at once by a second signal)", code)
