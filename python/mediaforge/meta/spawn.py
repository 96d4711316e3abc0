"""Starting an extraction worker: a fresh interpreter joined to this process by a socket.

Apart from the pool, and on nothing but the standard library's process and socket
modules, so that the CLI can start its workers a few milliseconds into its life, while
it goes on to import DuckDB and open the catalog: a worker's own start-up (its
interpreter, PyAV, Pillow, mutagen) is the longest thing a short `meta` run waits for.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from ..errors import InternalError


def spawn() -> tuple[subprocess.Popen[bytes], socket.socket]:
    """A worker process and this side of its socket."""
    # A fresh interpreter rather than multiprocessing's spawn: it does not re-run the
    # caller's __main__ (a notebook, a script on stdin) and inherits nothing but a socket.
    parent, child = socket.socketpair()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mediaforge.meta.worker", str(child.fileno()), str(os.getpid())],
            pass_fds=(child.fileno(),), stdin=subprocess.DEVNULL, start_new_session=True,
            # Decoders' C libraries write their complaints to stderr (libtiff: "LZWDecode:
            # Not enough data at scanline 0"): what matters reaches meta_errors, and the
            # terminal stays clean. MEDIAFORGE_DEBUG=1 lets them through.
            stderr=None if os.environ.get("MEDIAFORGE_DEBUG") else subprocess.DEVNULL,
        )
    except OSError as e:  # the interpreter cannot be run by this user, too many processes ...
        parent.close()
        # Exit 1, as for workers that die as they start: the install, not the library.
        raise InternalError(f"cannot start the extraction workers ({sys.executable}: {e.strerror})") from None
    finally:
        child.close()
    return proc, parent


# Workers started ahead by `prestart`, for the first pool of this process to take over.
PRESTARTED: list[tuple[subprocess.Popen[bytes], socket.socket]] = []


def prestart(count: int) -> None:
    """Start `count` workers now, for a pool made later in this process to take over: the
    CLI calls this first thing, so workers boot while it imports DuckDB and opens the
    catalog. Workers nobody takes are killed when the process exits."""
    import atexit

    if not PRESTARTED:
        atexit.register(_discard)
    PRESTARTED.extend(spawn() for _ in range(max(0, count - len(PRESTARTED))))


def _discard() -> None:
    while PRESTARTED:
        proc, sock = PRESTARTED.pop()
        proc.kill()
        proc.wait()
        sock.close()
