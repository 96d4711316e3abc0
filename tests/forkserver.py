"""Run the tests' `mediaforge` commands as forks of a process that has its libraries loaded.

Nearly all of the test suite's time went into starting `python -m mediaforge` hundreds of
times: about 0.35 s of each call was the interpreter loading DuckDB, pyarrow, typer and rich
before the command did anything. A server process loads those once; each `run_cli` call
then asks it for a fork, which becomes the command exactly as `python -m mediaforge ARGS`
would: its own process, with the caller's standard input, pipes for its output, the
environment, folder and umask given, and the package (none of which the server loaded)
imported and run afresh by `runpy`. The exit status (a signal as a negative number, as
`subprocess` reports it) comes back from the server, which reaps the fork.

Calls the server cannot stand in for faithfully run as plain subprocesses: an environment
whose Python, locale or language settings differ from the server's (those shape the
interpreter's own start-up), `subprocess` options other than `cwd`, and every call when
MEDIAFORGE_TEST_FORK=0. Tests that signal a command, watch its start-up or give it a
terminal start it themselves with `cli_cmd` and never come here.

What a fork cannot undo: it has the server's string hash seed (each server run draws its
own), so a test of output order across runs starts its commands with `cli_cmd`; and the
libraries above are loaded before the command imports them, so run the suite with
MEDIAFORGE_TEST_FORK=0 after changing what the command line imports.
"""

from __future__ import annotations

import atexit
import os
import pickle
import re
import socket
import struct
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

# Environment variables read while the interpreter starts (encodings, buffering, paths,
# hash seed ...) or while the preloaded libraries load (time zone, allocators, typer's
# switches): a call that sets them differently from the server gets a real process.
_STARTUP_ENV = re.compile(rb"^(PYTHON|LC_|LANG$|LANGUAGE$|TZ$|ARROW_|MIMALLOC_|JE_|OMP_|_?TYPER_)")
_MAX_REQUEST = 64 * 1024

# What the server runs. It loads the command line's libraries (pyarrow as the command line
# loads it, without numpy: see mediaforge/_arrowload.py, loaded here by its path so that
# the package itself stays unloaded), then forks once per request read from the socket
# whose descriptor it is given. A fork leaves the loop and runs the command at the top
# level, so the command's SystemExit ends it as it ends any interpreter.
_SERVER = r"""
import importlib.util, io, os, pickle, runpy, signal, socket, struct, sys, threading, warnings

spec = importlib.util.spec_from_file_location("_mf_arrowload", sys.argv[2])
arrowload = importlib.util.module_from_spec(spec)
spec.loader.exec_module(arrowload)
arrowload.install()
import pyarrow, pyarrow.lib
sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, arrowload._WithoutNumpy)]
for name in ("duckdb", "typer", "typer.main", "rich.console", "rich.progress", "rich.table", "rich.markup"):
    __import__(name)

ctl = socket.socket(fileno=int(sys.argv[1]))
live = set()  # this side of the requests whose commands still run


def reap(pid, conn):
    _, status = os.waitpid(pid, 0)
    try:
        conn.sendall(struct.pack("!i", os.waitstatus_to_exitcode(status)))
    except OSError:
        pass
    live.discard(conn)
    conn.close()


def serve():
    while True:
        msg, fds, _, _ = socket.recv_fds(ctl, %(max)d, 4)
        if not msg:  # the test process is gone
            os._exit(0)
        conn = socket.socket(fileno=fds[0])
        with warnings.catch_warnings():  # Python 3.12+ warns of pyarrow's allocator thread
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:
            ctl.close()
            for c in (conn, *live):
                c.close()
            return pickle.loads(msg), fds[1:]
        for fd in fds[1:]:
            os.close(fd)
        pidfd = os.pidfd_open(pid)  # for the caller to kill it with, and never another process
        socket.send_fds(conn, [struct.pack("!i", pid)], [pidfd])
        os.close(pidfd)
        live.add(conn)
        threading.Thread(target=reap, args=(pid, conn), daemon=True).start()


req, fds = serve()
for target, fd in enumerate(fds):
    os.dup2(fd, target)
for fd in set(fds):
    if fd > 2:
        os.close(fd)
# Standard streams as a fresh interpreter makes them over these descriptors (the server's
# were made over others, and remember whether those could seek).
for fd, name in enumerate(("stdin", "stdout", "stderr")):
    old = getattr(sys, name)
    raw = io.FileIO(fd, "rb" if fd == 0 else "wb", closefd=False)
    buf = raw if fd and old.write_through else (io.BufferedReader if fd == 0 else io.BufferedWriter)(raw)
    new = io.TextIOWrapper(buf, old.encoding, old.errors, "\n", old.line_buffering, old.write_through)
    setattr(sys, name, new)
    setattr(sys, f"__{name}__", new)
os.umask(req["umask"])
os.chdir(req["cwd"])
os.environ.clear()
os.environb.update(req["env"])
sys.path[0] = os.getcwd()  # as `python -m` sets it
sys.argv = ["mediaforge", *(os.fsdecode(a) for a in req["args"])]
del req, fds
runpy.run_module("mediaforge", run_name="__main__", alter_sys=True)
sys.exit(0)
""" % {"max": _MAX_REQUEST}


class _Server:
    def __init__(self, env: dict[str, str]) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        arrowload = Path(__file__).resolve().parent.parent / "python" / "mediaforge" / "_arrowload.py"
        if not arrowload.exists():  # an installed package rather than this checkout
            import mediaforge

            arrowload = Path(mediaforge.__file__).parent / "_arrowload.py"
        # Its own messages (a failed start) go to a log, not into some test's captured stderr.
        self.log = tempfile.NamedTemporaryFile(prefix="mediaforge-forkserver-", suffix=".log")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _SERVER, str(theirs.fileno()), str(arrowload)],
            pass_fds=(theirs.fileno(),), env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=self.log,
        )
        theirs.close()
        self.ctl = ours
        self.lock = threading.Lock()
        self.startup_env = {os.fsencode(k): os.fsencode(v) for k, v in env.items()
                            if _STARTUP_ENV.match(os.fsencode(k))}

    def serves(self, env: dict[bytes, bytes]) -> bool:
        return self.proc.poll() is None and self.startup_env == {
            k: v for k, v in env.items() if _STARTUP_ENV.match(k)}

    def gone(self) -> ConnectionError:
        self.log.seek(0)
        return ConnectionError(f"the test fork server is gone: {self.log.read().decode(errors='replace')[-2000:]}")

    def run(self, args: list[bytes], env: dict[bytes, bytes], cwd: bytes, timeout: float | None,
            cmd: list) -> tuple[int, bytes, bytes] | None:
        """Run the command in a fork; None when the request could not be made."""
        msg = pickle.dumps({"args": args, "env": env, "cwd": cwd, "umask": _umask()})
        if len(msg) > _MAX_REQUEST:
            return None
        mine, its = socket.socketpair()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        try:
            stdin = 0 if _is_open(0) else os.open(os.devnull, os.O_RDONLY)
            try:
                with self.lock:
                    socket.send_fds(self.ctl, [msg], [its.fileno(), stdin, out_w, err_w])
            finally:
                if stdin != 0:
                    os.close(stdin)
        except OSError:
            for fd in (out_r, out_w, err_r, err_w):
                os.close(fd)
            mine.close()
            its.close()
            return None
        its.close()
        os.close(out_w)
        os.close(err_w)
        deadline = None if timeout is None else time.monotonic() + timeout
        out, err = bytearray(), bytearray()
        readers = [threading.Thread(target=_drain, args=(fd, buf), daemon=True)
                   for fd, buf in ((out_r, out), (err_r, err))]
        for t in readers:
            t.start()
        with mine:
            try:
                got, fds, _, _ = socket.recv_fds(mine, 4, 1)
            except OSError:
                got, fds = b"", []
            if len(got) != 4 or len(fds) != 1:
                raise self.gone()
            pidfd = fds[0]
            try:
                for t in readers:
                    t.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
                mine.settimeout(None if deadline is None else max(0.01, deadline - time.monotonic()))
                try:
                    rc: int | None = struct.unpack("!i", _recv_exact(mine, 4, self))[0]
                except TimeoutError:
                    rc = None
                if rc is None or any(t.is_alive() for t in readers):
                    # Past the timeout, as subprocess.run sees it (the command, or a process
                    # it started, still holds its output): kill the command, through its
                    # pidfd so never a process that took its pid since; keep what it wrote.
                    try:
                        signal.pidfd_send_signal(pidfd, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                    for t in readers:
                        t.join(0.5)
                    raise subprocess.TimeoutExpired(cmd, timeout, bytes(out), bytes(err))
            finally:
                os.close(pidfd)
        return rc, bytes(out), bytes(err)


def _umask() -> int:
    """This process's umask, read without setting it (which another thread would see)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    raise OSError("no Umask in /proc/self/status")


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def _recv_exact(sock: socket.socket, n: int, server: _Server) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise server.gone()
        data += chunk
    return data


def _drain(fd: int, buf: bytearray) -> None:
    try:
        while chunk := os.read(fd, 1 << 16):
            buf += chunk
    finally:
        os.close(fd)


_server: _Server | None = None
_server_lock = threading.Lock()


def _get_server(env: dict[str, str]) -> _Server:
    global _server
    with _server_lock:
        if _server is None or _server.proc.poll() is not None:
            _server = _Server(env)
            atexit.register(_stop, _server)
        return _server


def _stop(server: _Server) -> None:
    server.ctl.close()  # the server reads EOF and exits
    try:
        server.proc.wait(5)
    except subprocess.TimeoutExpired:
        server.proc.kill()


def run(cmd: list, env: dict[str, str], timeout: float | None, cwd: os.PathLike | str | None,
        base_env: dict[str, str]) -> tuple[int, bytes, bytes]:
    """`subprocess.run(cmd, capture_output=True, env=env, cwd=cwd, timeout=timeout)` for a
    `python -m mediaforge ARGS` command line, through the fork server where it can."""
    if cmd[1:3] == ["-m", "mediaforge"] and os.environ.get("MEDIAFORGE_TEST_FORK", "1") != "0":
        benv = {os.fsencode(k): os.fsencode(v) for k, v in env.items()}
        server = _get_server(base_env)
        if server.serves(benv) and os.path.isdir(cwd or "."):
            got = server.run([os.fsencode(a) for a in cmd[3:]], benv, os.fsencode(os.path.abspath(cwd or ".")),
                             timeout, cmd)
            if got is not None:
                return got
    p = subprocess.run(cmd, capture_output=True, timeout=timeout, env=env, cwd=cwd)
    return p.returncode, p.stdout, p.stderr
