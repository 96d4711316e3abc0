"""The extraction worker process: `python -m mediaforge.meta.worker FD`.

It reads lists of tasks from the socket FD and answers one result per file, so the
parent always knows which file it is on. It ignores Ctrl-C (the parent stops it) and
exits when the socket closes, so a parent killed with -9 leaves no worker behind.
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import sys
import warnings
from multiprocessing.connection import Connection

from .readers import ERROR, extract_one, failed, message_of
from .image import register_plugins


def _die_with(parent: int) -> None:
    """Be killed by the kernel when the parent dies (`kill -9` included): a worker busy
    with one long file would otherwise run on until that file is done, past any timeout."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the socket's end still stops it between files
        return
    if os.getppid() != parent:  # the parent died before the request: nobody to serve
        os._exit(0)


def _few_malloc_arenas() -> None:
    """Cap glibc's malloc arenas at two. It gives each new thread an arena of its own, up
    to eight per core, and each reserves 64 MiB of address space: libav's decoder threads
    (one per core, and one more) spent the worker's memory limit on reservations (a video
    crashed a 512M worker with FFmpeg 8.1.3, and would on any machine with many cores).
    A worker reads one file at a time; two arenas serve it."""
    try:
        import ctypes

        ctypes.CDLL(None).mallopt(-8, 2)  # M_ARENA_MAX
    except (OSError, AttributeError):  # not glibc: nothing to cap
        pass


def _worker_main(fd: int, parent: int | None = None) -> None:
    """Serve tasks over the socket `fd` until it closes."""
    if parent is not None:
        _die_with(parent)
    _few_malloc_arenas()
    # Only the parent decides when a worker stops (workers run in their own session, but a
    # signal may still be sent to them all, by a shutdown say): it closes the socket, which
    # ends the worker after its current file, or kills it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # Decoders warn about what they meet (odd EXIF, unknown formats); what matters is
    # recorded in meta_errors, and the user's terminal stays clean.
    warnings.simplefilter("ignore")
    # One worker a core: numpy's BLAS needs no threads of its own here, and each would
    # reserve tens of MiB of address space under the limit below.
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(name, "1")
    register_plugins()
    # Load the decoders now, not inside the first file's timeout, and before the limit:
    # what they reserve as they load (numpy's BLAS buffers) is no file's to fail on.
    import av  # noqa: F401
    import mutagen  # noqa: F401
    from PIL import Image

    with contextlib.suppress(ImportError):  # the fingerprints' arithmetic
        import numpy  # noqa: F401
    Image.preinit()  # the common formats first, so they are tried first
    Image.init()  # then every other plugin, rather than on the first file Pillow cannot guess
    try:
        import resource

        from ..config import worker_memory

        limit = worker_memory() or resource.RLIM_INFINITY  # checked by the parent already
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except (ImportError, ValueError, OSError):
        pass

    conn = Connection(fd)
    try:
        conn.send(("ready", None))
    except OSError:
        return
    av_files = 0
    while True:
        try:
            tasks = conn.recv()
        except (EOFError, OSError):
            return
        if tasks is None:
            return
        for task in tasks:
            try:
                result = extract_one(task)
            except MemoryError:
                result = failed(task, ERROR, "decode", "out of memory (worker memory limit)")
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as e:  # noqa: BLE001 - a reader's bug on one hostile file
                # must cost that file, not the worker and the rest of its share; and the
                # user sees a meta_errors row, not a traceback. BaseException: a panic in
                # the Rust core arrives as pyo3's PanicException, which derives from it.
                result = failed(task, ERROR, "decode", message_of(e))
            if task.kind in ("video", "audio"):
                # libav's decoders (and the threads each one runs) go only when the garbage
                # collector frees their streams: file after file they piled up in the worker
                # (a hundred threads, 2 GB of address space), and valid files met its
                # memory limit for what came before them. The young generations hold them
                # (a fraction of a ms); a whole collection (5 ms) now and then, for any
                # that grew old within a long file.
                av_files += 1
                gc.collect(2 if av_files % 16 == 0 else 1)
            try:
                conn.send(("done", result))
            except OSError:  # the parent is gone (killed): nobody to answer, nothing to say
                return


if __name__ == "__main__":
    _worker_main(int(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else None)
