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
"""

from __future__ import annotations

import atexit
import os
import pickle
import re
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

# Environment variables read while the interpreter starts (encodings, buffering, paths,
# hash seed ...): a call that sets them differently from the server gets a real process.
_STARTUP_ENV = re.compile(rb"^(PYTHON|LC_|LANG$|LANGUAGE$)")
_MAX_REQUEST = 64 * 1024

# What the server runs. It loads the command line's libraries (pyarrow as the command line
# loads it, without numpy: see mediaforge/_arrowload.py, loaded here by its path so that
# the package itself stays unloaded), then forks once per request read from the socket
# whose descriptor it is given. A fork leaves the loop and runs the command at the top
# level, so the command's SystemExit ends it as it ends any interpreter.
_SERVER = r"""
import importlib.util, os, pickle, runpy, socket, struct, sys, threading

spec = importlib.util.spec_from_file_location("_mf_arrowload", sys.argv[2])
arrowload = importlib.util.module_from_spec(spec)
spec.loader.exec_module(arrowload)
arrowload.install()
import pyarrow, pyarrow.lib
sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, arrowload._WithoutNumpy)]
for name in ("duckdb", "typer", "typer.main", "rich.console", "rich.progress", "rich.table", "rich.markup",
             "PIL.Image", "shellingham", "inspect", "dataclasses", "decimal", "json", "csv", "uuid", "difflib",
             "tempfile", "zipfile", "logging", "subprocess", "multiprocessing.connection", "xml.etree.ElementTree",
             "importlib.metadata"):
    try:
        __import__(name)
    except ImportError:
        pass

ctl = socket.socket(fileno=int(sys.argv[1]))


def reap(pid, conn):
    _, status = os.waitpid(pid, 0)
    try:
        conn.sendall(struct.pack("!i", os.waitstatus_to_exitcode(status)))
    except OSError:
        pass
    conn.close()


def serve():
    while True:
        msg, fds, _, _ = socket.recv_fds(ctl, %(max)d, 4)
        if not msg:  # the test process is gone
            os._exit(0)
        conn = socket.socket(fileno=fds[0])
        pid = os.fork()
        if pid == 0:
            ctl.close()
            conn.close()
            return pickle.loads(msg), fds[1:]
        for fd in fds[1:]:
            os.close(fd)
        conn.sendall(struct.pack("!i", pid))
        threading.Thread(target=reap, args=(pid, conn), daemon=True).start()


req, fds = serve()
for target, fd in enumerate(fds):
    os.dup2(fd, target)
for fd in set(fds):
    if fd > 2:
        os.close(fd)
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
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _SERVER, str(theirs.fileno()), str(arrowload)],
            pass_fds=(theirs.fileno(),), env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        )
        theirs.close()
        self.ctl = ours
        self.lock = threading.Lock()
        self.startup_env = {os.fsencode(k): os.fsencode(v) for k, v in env.items()
                            if _STARTUP_ENV.match(os.fsencode(k))}

    def serves(self, env: dict[bytes, bytes]) -> bool:
        return self.proc.poll() is None and self.startup_env == {
            k: v for k, v in env.items() if _STARTUP_ENV.match(k)}

    def run(self, args: list[bytes], env: dict[bytes, bytes], cwd: bytes, timeout: float | None,
            cmd: list) -> tuple[int, bytes, bytes] | None:
        """Run the command in a fork; None when the request could not be made."""
        umask = os.umask(0)
        os.umask(umask)
        msg = pickle.dumps({"args": args, "env": env, "cwd": cwd, "umask": umask})
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
        with mine:
            pid = struct.unpack("!i", _recv_exact(mine, 4))[0]
            out, err = bytearray(), bytearray()
            readers = [threading.Thread(target=_drain, args=(fd, buf), daemon=True)
                       for fd, buf in ((out_r, out), (err_r, err))]
            for t in readers:
                t.start()
            deadline = None if timeout is None else time.monotonic() + timeout
            for t in readers:
                t.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
                if t.is_alive():  # as subprocess.run does: kill the command, keep its output
                    try:
                        os.kill(pid, 9)
                    except ProcessLookupError:
                        pass
                    for r in readers:
                        r.join(5)
                    raise subprocess.TimeoutExpired(cmd, timeout, bytes(out), bytes(err))
            rc = struct.unpack("!i", _recv_exact(mine, 4))[0]
        return rc, bytes(out), bytes(err)


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("the test fork server is gone")
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


def _get_server(env: dict[str, str]) -> _Server | None:
    global _server
    with _server_lock:
        if _server is None or _server.proc.poll() is not None:
            if os.environ.get("MEDIAFORGE_TEST_FORK", "1") == "0":
                return None
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
        if server is not None and server.serves(benv):
            got = server.run([os.fsencode(a) for a in cmd[3:]], benv, os.fsencode(os.path.abspath(cwd or ".")),
                             timeout, cmd)
            if got is not None:
                return got
    p = subprocess.run(cmd, capture_output=True, timeout=timeout, env=env, cwd=cwd)
    return p.returncode, p.stdout, p.stderr
