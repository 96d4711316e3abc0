"""A scan killed with SIGKILL, stopped with Ctrl-C, or racing another writer leaves a
catalog that opens, holds no duplicates, and is completed by the next scan."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import blake3
import pytest

from conftest import (
    MediaTree,
    assert_one_line_error,
    cli_cmd,
    cli_env,
    do_scan,
    files_by_path,
    rows,
    run_cli,
    write_bytes_path,
)
from mediaforge import open_catalog
from mediaforge.errors import CatalogBusyError, ExitCode

MIB = 1024 * 1024

# A library scan driven through the public API in its own process, so the test can kill
# it. "report" prints progress lines; "hold" stops in its first progress callback (with
# the scan begun and the catalog open for writing) until a file appears; "hold-at-write"
# stops in the callback that comes after the last batch is written and before the scan
# settles moves and missing files.
DRIVER = r"""
import os, sys, time
from mediaforge import ScanConfig, open_catalog, scan

catalog, root, mode = sys.argv[1], sys.argv[2], sys.argv[3]
cat = open_catalog(catalog)
if mode == "hold-at-write":
    def on_progress(p):
        if p.phase == "write":
            print("holding", flush=True)
            time.sleep(3600)
    config = ScanConfig(roots=(root,), threads=2)
elif mode == "hold":
    go = sys.argv[4]
    def on_progress(p):
        if not os.path.exists(go):
            print("holding", flush=True)
            while not os.path.exists(go):
                time.sleep(0.01)
    config = ScanConfig(roots=(root,), threads=2)
else:
    def on_progress(p):
        print(p.phase, p.hash_files_done, p.hash_files_total, flush=True)
    # "report-16": 16 threads, so four connections write batches of new rows at once;
    # each batch committed says so.
    config = ScanConfig(roots=(root,), threads=16 if mode == "report-16" else 1, batch_rows=200, flush_seconds=0.05)
    if mode == "report-16":
        import importlib
        engine = importlib.import_module("mediaforge.scan.engine")
        write = engine.write_files
        def written(*args, **kwargs):
            out = write(*args, **kwargs)
            print("written", 0, 0, flush=True)
            return out
        engine.write_files = written
s = scan(cat, config, on_progress=on_progress)
cat.close()
print("done", s.new, flush=True)
"""


def start_driver(catalog: Path, root: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", DRIVER, str(catalog), str(root), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cli_env())


def _signal_and_collect(p: subprocess.Popen, sig: int, what: str, timeout: float = 30) -> tuple[bytes, bytes]:
    """Send `sig` to `p`; its stdout and stderr once it has ended, which it must within `timeout`."""
    p.send_signal(sig)
    try:
        return p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{what} did not stop after signal {sig}")


def stop(p: subprocess.Popen) -> None:
    if p.poll() is None:
        p.kill()
    p.wait(timeout=30)
    for f in (p.stdout, p.stderr):
        if f is not None:
            f.close()


def sparse(path: bytes, size: int, tail: bytes = b"tail") -> None:
    """A file of `size` bytes that costs no disk: zeros, then `tail` at the end. Reading
    it the first time still takes real time (the page cache is filled with zeros)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.ftruncate(fd, size)
        os.pwrite(fd, tail, size - len(tail))
    finally:
        os.close(fd)


def sparse_digest(size: int, tail: bytes = b"tail") -> str:
    h = blake3.blake3()
    zeros = bytes(MIB)
    left = size - len(tail)
    while left:
        n = min(left, MIB)
        h.update(zeros[:n])
        left -= n
    h.update(tail)
    return h.hexdigest()


# --------------------------------------------------------------------------------------
# kill -9 in the middle of a scan.
# --------------------------------------------------------------------------------------

DIRS, SMALL_PER_DIR, BIG = 40, 75, 96 * MIB


@pytest.fixture
def big_tree(tmp_path: Path) -> tuple[Path, dict[bytes, str]]:
    """40 folders of 75 small files and one sparse 96 MiB file each: about 3000 files
    whose hashing takes seconds on one thread. Returns the root and every file's digest."""
    root = tmp_path / "big"
    expected: dict[bytes, str] = {}
    big_digest = sparse_digest(BIG)
    for d in range(DIRS):
        folder = os.fsencode(root / f"roll-{d:02d}")
        os.makedirs(folder)
        for i in range(SMALL_PER_DIR):
            data = f"{d}/{i} ".encode() * (10 + (i * 37) % 300)
            p = os.path.join(folder, b"IMG_%04d.jpg" % i)
            write_bytes_path(p, data)
            expected[p] = blake3.blake3(data).hexdigest()
        p = os.path.join(folder, b"clip.mp4")
        sparse(p, BIG)
        expected[p] = big_digest
    return root, expected


@pytest.mark.parametrize("mode", ["report", "report-16"])
def test_kill_9_mid_scan_leaves_a_catalog_the_next_scan_completes(
    big_tree: tuple[Path, dict[bytes, str]], catalog_path: Path, mode: str,
) -> None:
    root, expected = big_tree
    p = start_driver(catalog_path, root, mode)
    written = 0
    try:
        assert p.stdout is not None
        for line in p.stdout:
            phase, done = line.split()[:2]
            if phase == b"done":
                pytest.fail("the scan ended before it could be killed: make the tree heavier")
            written += phase == b"written"
            if (phase == b"hash" and int(done) >= 300 and mode == "report") or written >= 3:
                break
        else:
            pytest.fail(f"the scan died: {p.stderr.read().decode()}")  # type: ignore[union-attr]
        time.sleep(0.1)  # a few more batches get committed
        os.kill(p.pid, signal.SIGKILL)
        assert p.wait(timeout=30) == -signal.SIGKILL
    finally:
        stop(p)

    # The catalog opens (read-only too) and shows a scan that never finished.
    scans = rows(catalog_path, "SELECT scan_id, status, finished_at FROM scans")
    assert [(s["scan_id"], s["status"], s["finished_at"]) for s in scans] == [(1, "running", None)]
    dup = rows(catalog_path, "SELECT path_bytes, count(*) AS n FROM files GROUP BY path_bytes HAVING n > 1")
    assert dup == []
    committed = files_by_path(catalog_path)
    assert 0 < len(committed) < len(expected)
    for path, r in committed.items():
        assert r["blake3"] == expected[path], path

    # A writer marks the dead scan interrupted; the next scan completes the work.
    with open_catalog(catalog_path):
        pass
    # Its `errors`: the rows it wrote (none here), as for a scan stopped by Ctrl-C; not NULL.
    assert rows(catalog_path, "SELECT status, errors FROM scans") == [{"status": "interrupted", "errors": 0}]
    s = do_scan(catalog_path, root)
    assert s.files_seen == len(expected)
    assert s.new == len(expected) - len(committed)
    assert s.unchanged == len(committed)
    assert (s.changed, s.moved, s.missing, s.errors) == (0, 0, 0, 0)
    done = files_by_path(catalog_path)
    assert {p: r["blake3"] for p, r in done.items()} == expected
    assert all(r["status"] == "present" for r in done.values())
    assert rows(catalog_path, "SELECT count(*) AS n, count(DISTINCT path_bytes) AS d FROM files") == [
        {"n": len(expected), "d": len(expected)}]
    for path, r in committed.items():
        assert done[path]["media_id"] == r["media_id"]
    statuses = [r["status"] for r in rows(catalog_path, "SELECT status FROM scans ORDER BY scan_id")]
    assert statuses == ["interrupted", "completed"]


def test_kill_9_before_moves_are_settled_keeps_the_media_id(media_tree: MediaTree, catalog_path: Path) -> None:
    """The moved file's new row is committed, the old row is not yet settled: a crash
    here must not cost the file its identity (docs/architecture.md, Safety)."""
    do_scan(catalog_path, media_tree.root)
    before = files_by_path(catalog_path)
    src = media_tree.files["mp4"]
    dst = os.path.join(media_tree.root_b, b"Archive", b"clip.mp4")
    os.makedirs(os.path.dirname(dst))
    os.rename(src, dst)
    gone = media_tree.files["srt"]
    os.unlink(gone)

    p = start_driver(catalog_path, media_tree.root, "hold-at-write")
    try:
        assert p.stdout is not None
        assert p.stdout.readline() == b"holding\n", p.stderr.read().decode()  # type: ignore[union-attr]
        os.kill(p.pid, signal.SIGKILL)
        assert p.wait(timeout=30) == -signal.SIGKILL
    finally:
        stop(p)
    mid = files_by_path(catalog_path)
    assert mid[dst]["status"] == "present"  # the batch was committed
    # Moves by identity are written with the batch itself: the crash cannot split them.
    assert mid[dst]["media_id"] == before[src]["media_id"]
    assert src not in mid

    s = do_scan(catalog_path, media_tree.root)
    assert (s.moved, s.missing) == (0, 1)
    after = files_by_path(catalog_path)
    assert src not in after
    assert after[dst]["media_id"] == before[src]["media_id"]
    assert after[dst]["first_seen"] == before[src]["first_seen"]
    assert after[gone]["status"] == "missing"
    assert len(after) == len(before)
    statuses = [r["status"] for r in rows(catalog_path, "SELECT status FROM scans ORDER BY scan_id")]
    assert statuses == ["completed", "interrupted", "completed"]


# --------------------------------------------------------------------------------------
# Two writers.
# --------------------------------------------------------------------------------------


def test_second_writer_gets_catalog_busy_and_the_first_completes(
    media_tree: MediaTree, catalog_path: Path, tmp_path: Path,
) -> None:
    go = tmp_path / "go"
    p = start_driver(catalog_path, media_tree.root, "hold", str(go))
    try:
        assert p.stdout is not None
        assert p.stdout.readline() == b"holding\n", p.stderr.read().decode()  # type: ignore[union-attr]

        res = run_cli("scan", media_tree.root, catalog=catalog_path)
        assert res.rc == ExitCode.CATALOG_BUSY == 4
        assert_one_line_error(res.err, "catalog is busy")
        assert f"PID {p.pid}" in res.err  # who holds it
        assert res.out == ""
        # Readers are turned away the same way while a scan writes.
        res = run_cli("query", "SELECT count(*) FROM files", catalog=catalog_path)
        assert res.rc == 4
        assert_one_line_error(res.err, "catalog is busy")
        with pytest.raises(CatalogBusyError):
            open_catalog(catalog_path)

        go.touch()
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()
        assert out.decode().splitlines()[-1] == f"done {len(media_tree.files)}"
    finally:
        stop(p)
    scans = rows(catalog_path, "SELECT status, new_files FROM scans")
    assert scans == [{"status": "completed", "new_files": len(media_tree.files)}]
    assert set(files_by_path(catalog_path)) == set(media_tree.content)


# --------------------------------------------------------------------------------------
# Ctrl-C.
# --------------------------------------------------------------------------------------


def _has_open_file_under(pid: int, root: bytes) -> bool:
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except FileNotFoundError:
        return False
    for fd in fds:
        try:
            target = os.readlink(os.fsencode(f"/proc/{pid}/fd/{fd}"))
        except OSError:
            continue
        if target.startswith(root + b"/"):
            return True
    return False


@pytest.mark.parametrize(("sig", "code", "word"), [(signal.SIGINT, 130, "interrupted"),
                                                   (signal.SIGTERM, 143, "terminated (SIGTERM)")])
def test_ctrl_c_or_sigterm_stops_the_scan_cleanly(tmp_path: Path, catalog_path: Path, sig: int, code: int,
                                                  word: str) -> None:
    root = tmp_path / "videos"
    root.mkdir()
    for i in range(16):
        sparse(os.fsencode(root / f"take-{i:02d}.mov"), 128 * MIB)
    (root / "notes.srt").write_bytes(b"1\n00:00:00,000 --> 00:00:01,000\nhi\n")
    # An existing (empty) catalog: hashing then starts once the catalog is open, and the
    # scan is recorded right after. (Into a catalog not made yet hashing starts at once,
    # while DuckDB loads: the Ctrl-C tests below cover that.)
    from mediaforge import open_catalog

    open_catalog(catalog_path).close()
    p = subprocess.Popen(cli_cmd("scan", root, "--threads", "1"), env=cli_env(catalog_path),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not _has_open_file_under(p.pid, os.fsencode(root)):
            assert p.poll() is None, "the scan ended before it could be interrupted"
            assert time.monotonic() < deadline, "the scan never started hashing"
            time.sleep(0.01)
        time.sleep(0.2)
        assert p.poll() is None, "the scan ended before it could be interrupted"
        out, err = _signal_and_collect(p, sig, "the scan")
    finally:
        stop(p)
    assert p.returncode == code
    assert_one_line_error(err.decode(), word, "run the command again")
    assert out == b""

    scans = rows(catalog_path, "SELECT status, finished_at, errors, new_files FROM scans")
    assert len(scans) == 1
    assert scans[0]["status"] == "interrupted" and scans[0]["finished_at"] is not None
    assert scans[0]["new_files"] is None
    assert scans[0]["errors"] == rows(catalog_path, "SELECT count(*) AS n FROM scan_errors")[0]["n"]
    want = sparse_digest(128 * MIB)
    for path, r in files_by_path(catalog_path).items():
        if path.endswith(b".mov"):
            assert r["blake3"] == want

    res = run_cli("scan", root, "--json", catalog=catalog_path)
    assert res.rc == 0, res.err
    got = files_by_path(catalog_path)
    assert len(got) == 17
    assert all(r["status"] == "present" and r["blake3"] is not None for r in got.values())
    assert [r["status"] for r in rows(catalog_path, "SELECT status FROM scans ORDER BY scan_id")] == [
        "interrupted", "completed"]


def _wait_until_open(p: subprocess.Popen, path: Path) -> bool:
    """Wait until process `p` has `path` open; False if it ended first."""
    target = os.fsencode(path)
    deadline = time.monotonic() + 60
    while p.poll() is None:
        try:
            fds = os.listdir(f"/proc/{p.pid}/fd")
        except FileNotFoundError:
            return False
        for fd in fds:
            try:
                if os.readlink(os.fsencode(f"/proc/{p.pid}/fd/{fd}")) == target:
                    return True
            except OSError:
                continue
        assert time.monotonic() < deadline, f"{path} was never opened"
        time.sleep(0.002)
    return False


@pytest.mark.parametrize("threads", ["2", "16"])  # 16: the batch is written by another connection
def test_ctrl_c_at_any_moment_of_a_scan_ends_in_130_or_a_completed_scan(tmp_path: Path, threads: str) -> None:
    """Ctrl-C while walking, while a batch is written to the catalog, while moves are
    settled: always exit 130 with one line and the scan marked interrupted (or, when it
    came too late to stop anything, a completed scan), never an internal error."""
    root = tmp_path / "many"
    for d in range(12):
        folder = root / f"d{d:02d}"
        folder.mkdir(parents=True)
        for i in range(1000):
            os.mknod(folder / f"IMG_{i:04d}.jpg")

    empty = tmp_path / "empty"
    empty.mkdir()

    def start(catalog: Path) -> subprocess.Popen:
        do_scan(catalog, empty)  # an existing catalog, so the Ctrl-C is about the scan
        p = subprocess.Popen(cli_cmd("scan", root, "--no-hash", "--threads", threads), env=cli_env(catalog),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert _wait_until_open(p, catalog), p.communicate()[1].decode()
        return p

    # How long a scan runs once it has the catalog open, to spread the Ctrl-Cs over it.
    p = start(tmp_path / "timing.duckdb")
    started = time.monotonic()
    try:
        p.wait(timeout=120)
    finally:
        stop(p)
    took = time.monotonic() - started
    assert p.returncode == 0

    outcomes = []
    for k in range(12):
        catalog = tmp_path / f"c{k}.duckdb"
        p = start(catalog)
        try:
            time.sleep(took * k / 12)
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
            _out, err = p.communicate(timeout=60)
        finally:
            stop(p)
        status = [r["status"] for r in rows(catalog, "SELECT status FROM scans WHERE scan_id > 1")]
        outcomes.append((k, p.returncode, status, err.decode().strip()))
    ok = {
        (130, ()),  # stopped before the scan began: nothing written
        (130, ("interrupted",)),
        # Too late to stop anything: the scan completed (the signal may even land while
        # the interpreter shuts down).
        (130, ("completed",)), (0, ("completed",)), (-signal.SIGINT, ("completed",)),
    }
    bad = [o for o in outcomes if (o[1], tuple(o[2])) not in ok]
    assert bad == [], "\n".join(map(str, bad))
    for _k, rc, _status, err in outcomes:
        if rc == 130:
            assert_one_line_error(err, "interrupted")


def _before_our_entry_point(rc: int, err: str) -> bool:
    """A Ctrl-C that landed before `mediaforge._entry.main` ran: while CPython was starting
    (before it had a SIGINT handler, in `site`, in `runpy`) or importing the package's
    `__init__`. No frame of the entry point or of the CLI is in its traceback."""
    if rc == -signal.SIGINT and not err:
        return True
    if "KeyboardInterrupt" not in err:
        return False
    return "mediaforge/_entry.py" not in err and "mediaforge/cli/" not in err


def test_ctrl_c_while_the_command_starts_ends_in_130(tmp_path: Path) -> None:
    """Ctrl-C during start-up (imports, option parsing, catalog opening): exit code 130
    with one line, never a death by SIGINT. CPython took a KeyboardInterrupt caught after
    it escaped code run from a string (dataclasses and typer run some at start-up) for an
    unhandled one, and ended the process with SIGINT after the message. From the moment
    the package's entry point runs (`mediaforge._entry`) a Ctrl-C is ours; only one that
    lands while CPython itself is still starting (importing `site`) is Python's alone."""
    root = tmp_path / "lib"
    root.mkdir()
    for i in range(200):
        (root / f"IMG_{i:04d}.jpg").write_bytes(b"\xff\xd8\xff")
    outcomes = []
    for k in range(32):
        catalog = tmp_path / f"c{k}.duckdb"
        p = subprocess.Popen(cli_cmd("scan", root, "--no-hash"), env=cli_env(catalog), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        try:
            time.sleep(0.005 + 0.008 * k)
            p.send_signal(signal.SIGINT)
            _out, err = p.communicate(timeout=60)
        finally:
            stop(p)
        if _before_our_entry_point(p.returncode, err.decode("utf-8", "replace")):
            continue
        outcomes.append((k, p.returncode, err.decode().strip()))
    assert len(outcomes) >= 24
    assert [o for o in outcomes if o[1] not in (0, 130)] == []
    for _k, rc, err in outcomes:
        if rc == 130:
            assert_one_line_error(err, "interrupted")


@pytest.mark.parametrize("sig, code, said", [("SIGINT", 130, "interrupted"), ("SIGTERM", 143, "terminated (SIGTERM)")])
def test_a_stop_that_escapes_the_command_line_still_ends_in_one_line(sig: str, code: int, said: str) -> None:
    """A helper's finding: a second Ctrl-C landing outside every handler of the command
    line (between its start-up block and the command's, or as the first one's message
    began) ended in a traceback and a death by SIGINT. Whatever escapes it now ends as a
    stop does: one line, exit code 130 (143 for SIGTERM), what it printed before kept.
    The escape is made by hand: the command line is replaced by one that prints and is
    then stopped."""
    script = ("import os, signal, sys, time\n"
              "import mediaforge.cli as cli\n"
              "import mediaforge._entry as entry\n"
              "def stopped_at_once():\n"
              "    entry.give_ctrl_c_back()\n"
              "    entry.begin()\n"
              "    sys.stdout.write('results so far')\n"
              f"    os.kill(os.getpid(), signal.{sig})\n"
              "    time.sleep(5)\n"
              "cli.main = stopped_at_once\n"
              "entry.main()\n")
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    err = res.stderr.decode()
    assert res.returncode == code and "Traceback" not in err, (res.returncode, err)
    assert_one_line_error(err, said)
    assert res.stdout == b"results so far"


def test_a_ctrl_c_before_a_reading_command_began_says_nothing_was_done(tmp_path: Path) -> None:
    """A QA finding: a Ctrl-C in the first few tenths of a second of `stats` or `query`
    (Python starting, the options read) said "what was already done (and committed) is
    kept; run the command again to finish", a writer's words. Before the command began
    it says nothing was done; after, the command's own words."""
    catalog = _one_file_catalog(tmp_path)
    said = set()
    for k in range(16):
        p = subprocess.Popen(cli_cmd("stats"), env=cli_env(catalog), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            time.sleep(0.02 * k)
            p.send_signal(signal.SIGINT)
            _out, err = p.communicate(timeout=60)
        finally:
            stop(p)
        text = err.decode("utf-8", "replace")
        if p.returncode == 0 or _before_our_entry_point(p.returncode, text):
            continue
        assert p.returncode == 130, text
        assert_one_line_error(text, "interrupted")
        said.add(text.strip().split(": ", 2)[-1])
    assert said and said <= {"interrupted before the command began: nothing was done",
                              "interrupted: `stats` only reads the catalog; run it again"}, said


def test_a_ctrl_c_ignored_from_the_start_stays_ignored(tmp_path: Path) -> None:
    """A review finding: a command started with Ctrl-C ignored (a script's `mediaforge ...
    &`, which the shell shields from the terminal's Ctrl-C so) took it back as it started,
    and a Ctrl-C meant for the script stopped it. It runs on to its end."""
    catalog = _one_file_catalog(tmp_path)
    for delay in (0.02, 0.3):
        p = subprocess.Popen(cli_cmd("query", "SELECT count(*) AS n FROM range(300000000) t(x) WHERE x % 7 = 1",
                                     "-f", "json"), env=cli_env(catalog), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
        try:
            time.sleep(delay)
            p.send_signal(signal.SIGINT)
            out, err = p.communicate(timeout=120)
        finally:
            stop(p)
        assert p.returncode == 0 and json.loads(out) == [{"n": 42857143}], (delay, err)


# Sends a real signal (SIGINT, SIGTERM) `delay` seconds after the interpreter first looks
# for DuckDB's extension, then runs the CLI: a Ctrl-C or a stop that lands while the
# extension starts.
_SIGNAL_AS_DUCKDB_LOADS = """
import os, signal, sys, threading
delay, sigs = float(sys.argv[1]), [getattr(signal, s) for s in sys.argv[2].split("+")]
class Trip:
    def find_spec(self, name, path=None, target=None):
        if name == "_duckdb":
            sys.meta_path.remove(self)
            threading.Timer(delay, lambda: [os.kill(os.getpid(), s) for s in sigs]).start()
        return None
sys.meta_path.insert(0, Trip())
from mediaforge.cli import main
main(sys.argv[3:])
"""


@pytest.mark.parametrize(("sig", "code", "said"), [("SIGINT", 130, "interrupted"), ("SIGTERM", 143, "terminated"),
                                                    ("SIGINT+SIGTERM", 143, "terminated")])
def test_a_signal_while_duckdb_loads_ends_in_one_line(tmp_path: Path, sig: str, code: int, said: str) -> None:
    """DuckDB's extension (nanobind) aborts the process, with no message and exit code
    134, when a KeyboardInterrupt lands while it registers its types, and again when the
    cut-short import is retried (the error path used to retry it). A sweep over the first
    12 ms of its start-up hit that window several times before the load held Ctrl-C back,
    and SIGTERM (whose handler raises the same) about one stop in twenty after that."""
    root = tmp_path / "lib"
    root.mkdir()
    (root / "IMG_0001.jpg").write_bytes(b"\xff\xd8\xff")
    outcomes = []
    for k in range(25):
        catalog = tmp_path / f"c{k}.duckdb"
        p = subprocess.run([sys.executable, "-c", _SIGNAL_AS_DUCKDB_LOADS, str(0.0005 * k), sig, "--catalog",
                            catalog, "scan", root, "--no-hash"], env=cli_env(), capture_output=True, timeout=60)
        outcomes.append((k, p.returncode, p.stderr.decode(errors="replace").strip()))
    assert [o for o in outcomes if o[1] != code] == []
    for _k, _rc, err in outcomes:
        assert_one_line_error(err, said)


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _one_file_catalog(tmp_path: Path) -> Path:
    root = tmp_path / "lib"
    root.mkdir()
    (root / "IMG_0001.jpg").write_bytes(b"\xff\xd8\xff")
    catalog = tmp_path / "c.duckdb"
    assert run_cli("scan", root, catalog=catalog).rc == 0
    return catalog


def _start_query(catalog: Path, sql: str) -> subprocess.Popen:
    """`mediaforge query SQL`, returned once the statement has run for a while: the
    catalog is open and the process has used a second of CPU time more than by then."""
    p = subprocess.Popen(cli_cmd("query", sql), env=cli_env(catalog), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    assert _wait_until_open(p, catalog), p.communicate()
    begun = _cpu_seconds(p.pid)
    deadline = time.monotonic() + 60
    while _cpu_seconds(p.pid) < begun + 1.0:
        assert p.poll() is None, p.communicate()
        assert time.monotonic() < deadline, "the statement never got going"
        time.sleep(0.05)
    return p


@pytest.mark.parametrize(("sig", "code", "word"), [(signal.SIGINT, 130, "interrupted"),
                                                   (signal.SIGTERM, 143, "terminated (SIGTERM)")])
def test_ctrl_c_stops_a_long_query_at_once(tmp_path: Path, sig: int, code: int, word: str) -> None:
    """DuckDB notices Python's Ctrl-C only once a long join is over (minutes for this one):
    the command interrupts the statement itself, and ends within a second or two."""
    catalog = _one_file_catalog(tmp_path)
    p = _start_query(catalog, "SELECT count(*) FROM range(100000) a, range(1000000) b WHERE a.range + b.range = 7")
    try:
        out, err = _signal_and_collect(p, sig, "the query", timeout=20)
    finally:
        stop(p)
    assert p.returncode == code
    assert_one_line_error(err.decode(), word, "the query was stopped; the catalog is unchanged, and any rows")
    assert out == b""


def test_a_second_ctrl_c_ends_a_statement_that_cannot_be_interrupted(tmp_path: Path) -> None:
    """One enormous row (an edit distance over two 400,000-character texts, minutes of
    work) runs on after DuckDB is interrupted; a second Ctrl-C ends the command at once,
    with the message and exit code, and the catalog opens afterwards."""
    catalog = _one_file_catalog(tmp_path)
    p = _start_query(catalog, "SELECT levenshtein(repeat('a', 400000), repeat('b', 400000))")
    try:
        p.send_signal(signal.SIGINT)
        try:
            p.wait(timeout=1.5)
        except subprocess.TimeoutExpired:
            pass
        out, err = _signal_and_collect(p, signal.SIGINT, "the query", timeout=10)
    finally:
        stop(p)
    assert p.returncode == 130
    assert_one_line_error(err.decode(), "interrupted")
    assert out == b""
    assert run_cli("query", "SELECT count(*) AS n FROM files", "--format", "csv", catalog=catalog).out.split() == [
        "n", "1"]


def test_temporaries_of_a_killed_writer_are_swept_by_the_next_one(tmp_path: Path, catalog_path: Path) -> None:
    """`kill -9` of export, query -o, xmp export or meta leaves its temporaries; nothing
    removed them, and a killed `query -o` of a big result left one of tens of MB each time."""
    import secrets

    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "a.jpg").write_bytes(b"\xff\xd8\xff\xe0" + os.urandom(2000))
    assert run_cli("scan", "--no-meta", lib, catalog=catalog_path).rc == 0
    out = tmp_path / "out"
    out.mkdir()
    dead = subprocess.Popen(["true"])
    dead.wait()  # a pid that was a process and is gone
    live = os.getpid()
    stale = out / f".mediaforge-{dead.pid:08x}{secrets.token_hex(4)}.tmp"
    running = out / f".mediaforge-{live:08x}{secrets.token_hex(4)}.tmp"
    mine = out / ".mediaforge-notours.tmp"
    fresh = out / f".mediaforge-{dead.pid:08x}{secrets.token_hex(4)}.tmp"  # maybe a writer we cannot see
    for f in (stale, running, mine, fresh):
        f.write_bytes(b"partial")
    old = time.time() - 3600
    for f in (stale, running, mine):
        os.utime(f, (old, old))
    res = run_cli("query", "SELECT path FROM files", "-f", "csv", "-o", out / "r.csv", catalog=catalog_path)
    assert res.rc == 0, res.err
    assert sorted(p.name for p in out.iterdir()) == sorted([running.name, mine.name, fresh.name, "r.csv"])
    from media_corpus import picture

    picture(64, 48, 3).save(lib / "b.png")
    assert run_cli("scan", lib, catalog=catalog_path).rc == 0
    [thumb] = rows(catalog_path, "SELECT m.thumb FROM media m JOIN files f USING (blake3) WHERE f.name = 'b.png'")
    target = catalog_path.parent / "thumbs" / thumb["thumb"]
    left = target.parent / f".{target.name}.{dead.pid}.tmp"  # a killed worker's
    other = target.parent / f".{target.name}.{live}.tmp"  # a live one's
    for f in (left, other):
        f.write_bytes(b"")
        os.utime(f, (old, old))
    assert run_cli("thumbs", catalog=catalog_path).rc == 0
    assert not left.exists() and other.exists() and target.is_file()
    # A QA finding: one left in a shard no thumbnail is written to again stayed for good
    # (only a thumbnail written into its shard swept it). `meta` and `thumbs
    # --missing-only` sweep every shard; a young one stays, its writer maybe still at it.
    for command in (("meta",), ("thumbs", "--missing-only")):
        shard = catalog_path.parent / "thumbs" / thumb["thumb"].split("/")[0] / "0f"
        shard.mkdir(parents=True, exist_ok=True)
        left = shard / f".{'0f' * 32}.webp.{dead.pid}.tmp"
        young = shard / f".{'0e' * 32}.webp.{dead.pid}.tmp"
        for f in (left, young):
            f.write_bytes(b"RIFF")
        os.utime(left, (old, old))
        assert run_cli(*command, catalog=catalog_path).rc == 0
        assert (left.exists(), young.exists()) == (False, True), command
        young.unlink()


# A SIGTERM whose KeyboardInterrupt lands inside a callback Python runs for itself (an
# import lock's weakref callback, say): Python swallows it, with an "Exception ignored"
# traceback, and the command went on to exit 0.
_SIGTERM_IN_A_WEAKREF_CALLBACK = """
import signal, sys, weakref
class Trip:
    def find_spec(self, name, path=None, target=None):
        if name == "typer":  # imported once the command line's handlers are set
            sys.meta_path.remove(self)
            class Box:
                pass
            box = Box()
            self.ref = weakref.ref(box, lambda _ref: signal.raise_signal(signal.SIGTERM))
            del box
        return None
sys.meta_path.insert(0, Trip())
from mediaforge.cli import main
main(sys.argv[1:])
"""


def test_a_sigterm_python_swallows_in_its_own_callback_still_stops_the_command(tmp_path: Path) -> None:
    root = tmp_path / "lib"
    root.mkdir()
    (root / "IMG_0001.jpg").write_bytes(b"\xff\xd8\xff")
    p = subprocess.run([sys.executable, "-c", _SIGTERM_IN_A_WEAKREF_CALLBACK, "--catalog", tmp_path / "c.duckdb",
                        "scan", root, "--no-hash"], env=cli_env(), capture_output=True, timeout=60)
    err = p.stderr.decode(errors="replace")
    assert p.returncode == 143, err
    assert_one_line_error(err, "terminated")


def test_a_transaction_cut_off_before_its_rollback_does_not_block_the_work_kept_after(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A Ctrl-C whose handler runs at the `with` statement's exit, after a statement it
    interrupted failed, raises there, before the block's rollback: the transaction stayed
    open and aborted, and the results kept after the Ctrl-C failed to be written, ending
    in an internal error ("Current transaction is aborted"). Here the block is left that
    way by hand: its exit never runs."""
    import duckdb
    import pyarrow as pa

    from mediaforge import _ctrlc

    cat = open_catalog(tmp_path / "c.duckdb")
    cut_off = cat.transaction()
    con = cut_off.__enter__()
    con.execute("CREATE TABLE t (x INTEGER)")
    con.execute("INSERT INTO t VALUES (1)")
    with pytest.raises(duckdb.Error):
        con.execute("SELECT error('interrupted')")
    monkeypatch.setattr(_ctrlc, "_taken", 1)  # the Ctrl-C came; the work done is being kept
    with cat.registered("kept", pa.table({"x": [2, 3]})), cat.transaction() as con:
        con.execute("CREATE TABLE t (x INTEGER)")
        con.execute("INSERT INTO t SELECT x FROM kept")
    # The cut-off block, ended at last (as when its exception is dropped), rolls back
    # nothing of the later work.
    assert cut_off.__exit__(KeyError, KeyError("late"), None) is False  # not swallowed
    assert cat.con.execute("SELECT list(x ORDER BY x) FROM t").fetchone()[0] == [2, 3]
    with cat.transaction() as con:
        con.execute("INSERT INTO t VALUES (4)")
    cat.close()
    cat = open_catalog(tmp_path / "c.duckdb")
    assert cat.con.execute("SELECT list(x ORDER BY x) FROM t").fetchone()[0] == [2, 3, 4]
    # Without a Ctrl-C, a transaction still open is one being begun inside another: a
    # mistake, refused before anything of the outer one is lost.
    monkeypatch.setattr(_ctrlc, "_taken", 0)
    with pytest.raises(RuntimeError, match="inside another"), cat.transaction() as con:
        con.execute("INSERT INTO t VALUES (5)")
        with cat.transaction():
            pass
    assert cat.con.execute("SELECT list(x ORDER BY x) FROM t").fetchone()[0] == [2, 3, 4]
    cat.close()


def test_a_search_index_another_process_writes_is_waited_for_then_busy(tmp_path: Path) -> None:
    """tantivy's writer lock held by another process (its commit running) was exit code 2,
    a usage error, at once. A write now waits for it (up to 10 s), and past that says the
    index is busy (exit code 4), the change itself saved."""
    import fcntl

    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "a.jpg").write_bytes(b"not really a jpeg")
    catalog = tmp_path / "c.duckdb"
    assert run_cli("scan", "--no-meta", lib, catalog=catalog).rc == 0
    with open(tmp_path / "c.search" / ".tantivy-writer.lock", "r+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        res = run_cli("tag", "add", "kept", lib / "a.jpg", catalog=catalog)
        assert res.rc == ExitCode.CATALOG_BUSY == 4, res
        assert_one_line_error(res.err, f"search index {tmp_path / 'c.search'} is being written by another process "
                                       "(a scan or tag running now); the change is saved in the catalog")
        assert rows(catalog, "SELECT tag FROM tags") == [{"tag": "kept"}]
        # Let go while the next write waits for it: it runs then.
        t0 = time.monotonic()
        p = subprocess.Popen(cli_cmd("tag", "add", "later", lib / "a.jpg"), env=cli_env(catalog),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            time.sleep(4.0)  # (the command starts, tags, and waits for the index)
            assert p.poll() is None, p.communicate()
            fcntl.flock(lock, fcntl.LOCK_UN)
            _out, err = p.communicate(timeout=60)
        finally:
            stop(p)
        assert p.returncode == 0 and err == b"", err
        assert time.monotonic() - t0 >= 4.0
    res = run_cli("search", "tag:later", "--format", "json", catalog=catalog)
    assert res.rc == 0 and [os.path.basename(r["path"]) for r in json.loads(res.out)] == ["a.jpg"], res


def test_stop_leaves_an_ignored_ctrl_c_ignored_and_undoes_itself_when_one_lands_as_it_starts(monkeypatch) -> None:
    """Review findings on `Stop`: it took Ctrl-C even where it was ignored (a script's
    `mediaforge ... &`), so a background job stopped on it; and a Ctrl-C raised as it set
    its handlers (`signal.signal` runs a pending handler first) left Ctrl-C held back,
    and SIGINT bound to a `Stop` gone, for the rest of the process."""
    from mediaforge import _ctrlc
    from mediaforge.stop import Stop

    before = signal.getsignal(signal.SIGINT)
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        with Stop():
            assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
        signal.signal(signal.SIGINT, signal.default_int_handler)
        holds, real, calls = _ctrlc._holds, signal.signal, []

        def pending_ctrl_c_on_the_second(sig: int, handler: object) -> object:
            calls.append(sig)
            if len(calls) == 2:  # (SIGTERM's): the Ctrl-C on its way is raised here
                raise KeyboardInterrupt
            return real(sig, handler)

        monkeypatch.setattr(signal, "signal", pending_ctrl_c_on_the_second)
        with pytest.raises(KeyboardInterrupt), Stop():
            pytest.fail("the Ctrl-C already on its way was not raised")
        monkeypatch.undo()
        assert len(calls) == 3  # SIGINT's set, SIGTERM's raised, SIGINT's put back
        assert _ctrlc._holds == holds and signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, before)
