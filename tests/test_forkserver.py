"""The tests' fork server (forkserver.py) runs a command as a fresh `python -m mediaforge`
would: same exit code, output and errors, in the folder and environment given."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

import forkserver
from conftest import cli_cmd, cli_env, make_jpeg


@pytest.mark.parametrize("args", [
    ("--catalog", "c.duckdb", "scan", "lib", "--no-meta", "--json"),
    ("--catalog", "c.duckdb", "query", "SELECT count(*) AS n, min(path) AS p FROM files", "-f", "json"),
    ("--catalog", "c.duckdb", "query", "SELEC 1"),
    ("scan", b"lib/gone-\xff"),
    ("--catalog", "c.duckdb", "tag", "add", "x"),
])
def test_a_forked_command_answers_as_a_fresh_process(tmp_path: Path, args: tuple) -> None:
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "a.jpg").write_bytes(make_jpeg(3))
    env = cli_env(tmp_path / "env-catalog.duckdb", COLUMNS="100")
    fresh = subprocess.run(cli_cmd(*args), capture_output=True, env=env, cwd=tmp_path, timeout=120)
    if args[-1] == "--json":  # the second scan must find what the first found: start again
        os.remove(tmp_path / "c.duckdb")
    forked = forkserver.run(cli_cmd(*args), env, 120, tmp_path, cli_env())
    assert forkserver._server is not None and forkserver._server.serves(
        {os.fsencode(k): os.fsencode(v) for k, v in env.items()})
    rc, out, err = forked
    assert rc == fresh.returncode, err
    if args[-1] == "--json":  # times differ; the counts may not
        import json

        assert _untimed(json.loads(out)) == _untimed(json.loads(fresh.stdout))
    else:
        assert (out, err) == (fresh.stdout, fresh.stderr)


def _untimed(value: object) -> object:
    if isinstance(value, dict):
        return {k: _untimed(v) for k, v in value.items() if not any(t in k for t in ("second", "rate", "_at"))}
    return value


def test_a_command_past_its_timeout_is_killed_as_subprocess_would(tmp_path: Path) -> None:
    env = cli_env(tmp_path / "c.duckdb")
    (tmp_path / "empty").mkdir()
    assert forkserver.run(cli_cmd("scan", tmp_path / "empty"), env, 60, tmp_path, cli_env())[0] == 0
    sql = "SELECT count(*) FROM range(1000000000000) a"
    with pytest.raises(subprocess.TimeoutExpired):
        forkserver.run(cli_cmd("query", sql), env, 3, tmp_path, cli_env())


def test_commands_run_side_by_side_keep_their_own_output_and_codes(tmp_path: Path) -> None:
    import threading

    env = cli_env(tmp_path / "c.duckdb")
    (tmp_path / "empty").mkdir()
    assert forkserver.run(cli_cmd("scan", tmp_path / "empty"), env, 60, tmp_path, cli_env())[0] == 0
    got: dict[int, tuple] = {}

    def one(i: int) -> None:
        sql = f"SELECT {i} AS n" if i % 2 else f"SELECT * FROM no_table_{i}"
        got[i] = forkserver.run(cli_cmd("query", sql, "-f", "csv"), env, 60, tmp_path, cli_env())

    threads = [threading.Thread(target=one, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, (rc, out, err) in got.items():
        if i % 2:
            assert (rc, out, err) == (0, f"n\n{i}\n".encode(), b""), (i, err)
        else:
            assert rc == 6 and f"no_table_{i}".encode() in err, (i, err)


def test_a_folder_that_is_not_there_fails_as_subprocess_would(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        forkserver.run(cli_cmd("stats"), cli_env(tmp_path / "c.duckdb"), 60, tmp_path / "gone", cli_env())
