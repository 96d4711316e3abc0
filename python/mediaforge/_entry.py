"""The `mediaforge` console script's module: it exists so that Ctrl-C is ours from the
first instant after Python's own start-up (the package's `__init__` imports next to
nothing before this runs). Python turns Ctrl-C into KeyboardInterrupt, and one that
lands while the interpreter is still importing the package would end in a traceback;
until the command line is ready to catch it, a Ctrl-C here ends the process at once
with the documented message and exit code (nothing has been done yet, so nothing is
lost). SIGTERM then gets the same clean stop as Ctrl-C, with its own message and code.

Only the C module `_signal` is imported (`signal` would import `enum` first).
"""

from __future__ import annotations

import gc
import os
import sys

import _signal

INTERRUPTED = "interrupted: what was already done (and committed) is kept; run the command again to finish"
# Before the command itself ran (Python starting, the command line read): nothing of it.
NOT_BEGUN = "interrupted before the command began: nothing was done"
INTERRUPTED_EXIT = 130  # ExitCode.INTERRUPTED, without importing it
_begun = False


def begin() -> None:
    """The command itself runs from here on (see `stopped`)."""
    global _begun
    _begun = True


def stopped() -> str:
    """What a Ctrl-C that no command took in its own words left: nothing, before the
    command began."""
    return INTERRUPTED if _begun else NOT_BEGUN


def _interrupted_while_starting(signum: int, frame: object) -> None:
    os.write(2, f"mediaforge: error: {NOT_BEGUN}\n".encode())
    os._exit(INTERRUPTED_EXIT)


def take_ctrl_c_while_starting() -> None:
    try:
        # One ignored from the start stays so (a script's `mediaforge ... &`, which the
        # shell shields from the terminal's Ctrl-C so).
        if _signal.getsignal(_signal.SIGINT) != _signal.SIG_IGN:
            _signal.signal(_signal.SIGINT, _interrupted_while_starting)
    except ValueError:  # not the main thread: signals are not ours to set
        pass


TERMINATED = "terminated (SIGTERM): what was already done (and committed) is kept; run the command again to finish"
TERMINATED_EXIT = 143  # 128 + SIGTERM, as a shell reports a process that SIGTERM ended
_terminated = False


def _terminate(signum: int, frame: object) -> None:
    """SIGTERM (a shutdown, `kill`, a service manager) stops the command as Ctrl-C does:
    what is committed stays, the scan is recorded as interrupted."""
    global _terminated
    _terminated = True
    raise KeyboardInterrupt


def note_terminated() -> None:
    """A SIGTERM taken by a handler that stops the work itself (`stop.Stop`)."""
    global _terminated
    _terminated = True


def was_terminated() -> bool:
    return _terminated


def give_ctrl_c_back() -> None:
    """From here on Ctrl-C is a KeyboardInterrupt again, which the command line catches
    to stop cleanly and keep what was committed."""
    try:
        if _signal.getsignal(_signal.SIGINT) is _interrupted_while_starting:
            _signal.signal(_signal.SIGINT, _signal.default_int_handler)
        if _signal.getsignal(_signal.SIGTERM) == _signal.SIG_DFL:
            _signal.signal(_signal.SIGTERM, _terminate)
    except ValueError:
        pass


# Whether this process is the `mediaforge` command itself (the console script, or
# `python -m mediaforge`), rather than a program that calls the CLI's `main`: only then
# does the command end the process at once when done (see `cli._exit`).
_owns_process = False


def owns_process() -> bool:
    return _owns_process


def main() -> None:
    global _owns_process
    _owns_process = True
    take_ctrl_c_while_starting()
    # Imports make many objects and no garbage: the collector's passes over them while the
    # CLI starts (beside an early walk, on the same cores) are pure cost. It comes back,
    # with every object made so far set aside for good, once the CLI has loaded.
    gc.disable()
    from .cli import main as cli_main

    try:
        cli_main()
    except KeyboardInterrupt:
        # A second Ctrl-C (`timeout -s INT` signals the command, then its group) that
        # landed as the command line began to say the first one's stop, before its words
        # were out: the same stop, said once, never a traceback.
        _last_stop()


def ignore_stops() -> None:
    """Ignore Ctrl-C and SIGTERM from here on: one already on its way, raised as this
    runs, is taken and the ignoring goes on."""
    while True:
        try:
            _signal.signal(_signal.SIGINT, _signal.SIG_IGN)
            _signal.signal(_signal.SIGTERM, _signal.SIG_IGN)
            return
        except KeyboardInterrupt:
            continue
        except ValueError:  # not the main thread: signals are not ours to set
            return


# The exit code of a command that has ended, set as its output is flushed (`settle`).
_settled: int | None = None


def settle(code: int) -> None:
    """The command has ended with `code`: a Ctrl-C from here on (as its last output is
    flushed to a slow reader) ends the process with it, saying nothing more."""
    global _settled
    _settled = code


def _last_stop() -> None:
    ignore_stops()
    if _settled is not None:  # the command had ended: its outcome stands
        os._exit(_settled)
    leave_now(TERMINATED if _terminated else stopped(), TERMINATED_EXIT if _terminated else INTERRUPTED_EXIT)


def leave_now(said: str, code: int) -> None:
    """Say why on stderr (showing the cursor again where a progress bar on a terminal
    may have hidden it), pass on what the command wrote so far, and end the process at
    once with `code`."""
    try:
        cursor = "\x1b[?25h\n" if os.isatty(2) else ""
        os.write(2, f"{cursor}mediaforge: error: {said}\n".encode())
    except OSError:
        pass
    try:
        sys.stdout.flush()  # (results so far)
    except Exception:  # noqa: BLE001, S110 - a reader gone, a full disk: nothing more to save
        pass
    os._exit(code)
