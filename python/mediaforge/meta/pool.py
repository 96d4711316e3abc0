"""A pool of worker processes for extraction, with a per-file timeout.

Decoders are C code fed hostile input: one can hang, crash or eat memory. Each worker
is a separate process that handles a few files at a time and answers file by file, so
the parent always knows which file a worker is on. A worker that runs past the timeout
is killed, one that dies is noticed through its sentinel; either way its file is
recorded as `timeout` or `crashed`, the rest of its share goes back in the queue, and a
fresh worker takes its place. Workers ignore Ctrl-C: the parent stops them.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from multiprocessing.connection import Connection, wait

from ..config import cores
from ..errors import InternalError
from ..stop import Stop
from .readers import CRASHED, TIMEOUT, Task, failed, moved_on
from .spawn import PRESTARTED, spawn

CHUNK = 8
# Seconds a worker has to start (its interpreter, PyAV, Pillow, mutagen: about a second),
# or the per-file timeout if longer: one that hangs as it starts (a stuck network mount
# on its import path) is stopped and counted as a failed start, never waited on forever.
START_TIMEOUT = 60.0


def _spawn() -> _Worker:
    return _wrap(*spawn())


def _wrap(proc: subprocess.Popen[bytes], sock: socket.socket) -> _Worker:
    return _Worker(proc, Connection(sock.detach()))


# Workers stopped and waited for (or, stuck past the wait, left). Kept, not dropped: dropping one runs Popen.__del__, and a
# Ctrl-C that lands inside it (a second one, as `timeout -s INT` sends) is swallowed with an
# "Exception ignored ... KeyboardInterrupt" traceback on stderr. They go at the process's
# exit, once Ctrl-C is ignored (a few per run).
_REAPED: list[subprocess.Popen[bytes]] = []


@dataclass
class _Worker:
    proc: subprocess.Popen[bytes]
    conn: Connection
    inflight: deque[Task] = field(default_factory=deque)
    deadline: float = 0.0
    born: float = field(default_factory=time.monotonic)
    ready: bool = False
    dead: bool = False


def _reap(procs: list[subprocess.Popen[bytes]], grace: float, stop: Any = None) -> None:
    """Wait up to `grace` seconds for workers to end (cut short by a Ctrl-C that `stop`,
    a `Stop`, held back), then kill those left and wait at most 5 s more, for them all at
    once: never without bound (a process stuck in the kernel, or a Popen whose lock a
    Ctrl-C left taken, is left as it is)."""
    end, killed = time.monotonic() + grace, False
    while True:
        alive = [p for p in procs if p.poll() is None]
        now = time.monotonic()
        if not alive or (killed and now >= end):
            return
        if not killed and (now >= end or (stop is not None and stop.requested)):
            for p in alive:
                with contextlib.suppress(OSError):
                    p.kill()
            killed, end = True, now + 5.0
        time.sleep(0.002)


def _sweep(w: _Worker) -> None:
    """Remove the temporary thumbnail files a stopped worker may have been writing for the
    tasks it held (named by its pid): a Ctrl-C or a time-out leaves nothing behind."""
    held = [t for t in w.inflight if t.thumbs and t.thumbs_root]
    if not held:  # nothing to sweep: Pillow (which the module below loads) stays out of the parent
        return
    from .thumbs import thumb_relpath, tmp_name

    for t in held:
        target = os.path.join(t.thumbs_root, thumb_relpath(t.blake3, t.thumb_size))
        with contextlib.suppress(OSError):
            os.unlink(tmp_name(target, w.proc.pid))


class WorkerPool:
    """Run `extract_one` over tasks in `workers` processes; see the module docstring."""

    def __init__(self, workers: int, timeout: float) -> None:
        self.size = max(1, workers)
        self.timeout = timeout
        self.workers: list[_Worker] = []
        self.replaced = 0
        self.failed_starts = 0

    def _start(self) -> _Worker:
        return _wrap(*PRESTARTED.pop()) if PRESTARTED else _spawn()

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close(force=exc[0] is not None)

    def close(self, force: bool = False) -> None:
        """Stop every worker and sweep what it left. A Ctrl-C during this (`timeout -s INT`
        signals the process and then its group: two can come) stops the waiting, never
        the sweeping; it is raised once all is clean.

        Ctrl-C is held back meanwhile (`Stop`), not raised: one raised inside Popen's
        `poll` or `wait`, just after they take their private lock and before the `try`
        that gives it back, leaves the lock taken, and the next `wait()` waited for it
        forever (a CI run hung so after two back to back). The waits are bounded too."""
        interrupted = False
        while self.workers:
            try:
                with Stop() as stop:
                    self._close(force, stop)
                interrupted = interrupted or stop.requested
            except KeyboardInterrupt:  # (landed before `Stop` took the signal)
                interrupted = True
            force = force or interrupted
        if interrupted:
            raise KeyboardInterrupt

    def _close(self, force: bool, stop: Any) -> None:
        for w in self.workers:
            try:
                # An idle worker holds nothing half-done (thumbnails are renamed into place
                # before the result is sent), so it is stopped without waiting for its
                # interpreter to tear down.
                if force or not w.inflight:
                    w.proc.kill()
                else:
                    w.conn.send(None)
            except (OSError, ValueError):
                pass
        _reap([w.proc for w in self.workers], 2 if not force else 1, stop)
        while self.workers:
            w = self.workers[0]
            _sweep(w)
            w.conn.close()
            _REAPED.append(w.proc)
            self.workers.pop(0)

    def start(self) -> None:
        """Start workers now, so they boot while the caller does other work: as many as
        there are cores at most, since the task count is not known yet (`map` starts the
        rest, if the tasks need them)."""
        while len(self.workers) < min(self.size, cores()):
            self.workers.append(self._start())

    def _feed(self, w: _Worker, queue: _Queue) -> None:
        """Top a worker up before it runs dry, so it never waits on this process. Shares
        shrink as the queue does: files queued behind one that takes long (up to the
        timeout) wait with it, so a short run is spread over every worker."""
        size = max(1, min(CHUNK, len(queue) // (4 * max(1, len(self.workers)))))
        if w.ready and not w.dead and len(w.inflight) <= size // 2 and queue:
            share = queue.take(size)
            if not share:
                return
            if not w.inflight:
                w.deadline = time.monotonic() + self.timeout
            w.inflight.extend(share)
            w.conn.send(share)

    def map(self, tasks: Iterable[Task], total: int | None = None) -> Iterator[dict[str, Any]]:
        """Results in completion order, one per task, whatever happens to the workers.
        With `total` (how many `tasks` yields), tasks are drawn from it as workers need
        them, never all held at once."""
        queue = _Queue(tasks, total)
        if not queue:
            return
        while len(self.workers) < min(self.size, len(queue)):
            self.workers.append(self._start())
        while queue or any(w.inflight for w in self.workers):
            for w in self.workers:
                self._feed(w, queue)
            busy = {w.conn: w for w in self.workers if not w.dead}
            now = time.monotonic()
            next_deadline = min((w.deadline for w in self.workers if w.inflight), default=now + 1.0)
            for obj in wait(list(busy), timeout=max(0.0, min(next_deadline - now, 1.0))):
                w = busy[obj]  # type: ignore[index]
                while not w.dead and w.conn.poll():
                    try:
                        msg, payload = w.conn.recv()
                    except (EOFError, OSError):
                        w.dead = True  # the worker is gone; handled below
                        break
                    if msg == "ready":
                        w.ready = True
                    else:
                        w.inflight.popleft()
                        w.deadline = time.monotonic() + self.timeout
                        self._feed(w, queue)
                        yield payload
            now = time.monotonic()
            for i, w in enumerate(list(self.workers)):
                late = bool(w.inflight) and now > w.deadline
                stuck = not w.ready and now > w.born + max(START_TIMEOUT, self.timeout)
                if (late or stuck) and not w.dead and _answered(w):
                    # Answers (or its "ready") wait unread: this process was held up
                    # (stopped with Ctrl-Z, a slow write of the results), not the worker.
                    # Read on the next turn.
                    continue
                if not (w.dead or late or stuck):
                    continue
                w.proc.kill()
                _reap([w.proc], 0)
                code = w.proc.returncode if w.proc.returncode is not None else -9
                _sweep(w)
                if not w.ready:
                    self._failed_start(code, stuck and not w.dead)
                if w.inflight:
                    task = w.inflight.popleft()
                    queue.extendleft(reversed(w.inflight))
                    if moved_on(task):
                        # Replaced since the scan (by a FIFO, a link to a device, another
                        # file): what the worker met is no failure of this content.
                        yield {"blake3": task.blake3, "stale": True}
                    elif late and not w.dead:
                        yield failed(task, TIMEOUT, "timeout",
                                     f"gave up after {self.timeout:g} s; the worker was stopped")
                    else:
                        why = f"signal {-code}" if code < 0 else f"exit code {code}"
                        yield failed(task, CRASHED, "crash", f"the extraction worker died ({why})")
                w.conn.close()
                _REAPED.append(w.proc)
                self.replaced += 1
                self.workers[i] = self._start()

    def _failed_start(self, code: int, hung: bool) -> None:
        """Count a worker that died or hung before it was ready; the third one ends the run."""
        self.failed_starts += 1
        if self.failed_starts < 3:
            return
        check = "check that av, pillow and mutagen import: python -c 'import av, PIL, mutagen'"
        if hung:
            raise InternalError(f"extraction workers do not start within "
                                f"{max(START_TIMEOUT, self.timeout):g} s; {check}")
        raise InternalError(f"extraction workers die as they start (exit code {code}); {check}")


class _Queue:
    """The tasks still to hand out: those given back (a dead worker's share) first, then
    the rest drawn from `tasks` as they are needed; a million tasks (with their paths, about
    1 KB each in this process) are never all held at once. `len` counts what remains,
    from `total`; without it, every task is drawn at the start."""

    def __init__(self, tasks: Iterable[Task], total: int | None) -> None:
        self.front: deque[Task] = deque()
        if total is None:
            self.front.extend(tasks)
            self.rest: Iterator[Task] = iter(())
            self.left = 0
        else:
            self.rest, self.left = iter(tasks), max(0, total)

    def __len__(self) -> int:
        return len(self.front) + self.left

    def take(self, n: int) -> list[Task]:
        out: list[Task] = []
        while len(out) < n and self.front:
            out.append(self.front.popleft())
        while len(out) < n and self.left:
            task = next(self.rest, None)
            if task is None:  # fewer than `total`: nothing more
                self.left = 0
                break
            self.left -= 1
            out.append(task)
        return out

    def extendleft(self, tasks: Iterable[Task]) -> None:
        self.front.extendleft(tasks)


def _answered(w: _Worker) -> bool:
    """Whether a worker's answers (or its end) wait to be read."""
    try:
        return w.conn.poll()
    except (OSError, ValueError):
        return False
