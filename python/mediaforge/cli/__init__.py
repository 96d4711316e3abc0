"""The `mediaforge` command. Thin: options, a frozen config, one library call, output.

Errors from the library become one line on stderr and a documented exit code
(`mediaforge.errors.ExitCode`); MEDIAFORGE_DEBUG=1 adds the traceback (an internal
error is then raised whole, exit code 1).
"""

from __future__ import annotations

import errno
import gc
import os
import re
import sys
from typing import NoReturn

from .._entry import (INTERRUPTED, TERMINATED, TERMINATED_EXIT, give_ctrl_c_back, ignore_stops, owns_process,
                      settle, stopped, was_terminated)
from ..errors import ExitCode, MediaForgeError, is_text, quoted, text_of


def _buffer_stdout() -> None:
    """Under PYTHONUNBUFFERED=1 (or `python -u`) the standard output writes straight to
    the file, and Python drops what a short write left over: a result cut short where a
    disk filled, with exit code 0. A buffered writer writes the rest, and a full disk
    then fails the write as it should. Lines still go out as they are printed."""
    import io  # noqa: PLC0415

    raw = getattr(sys.stdout, "buffer", None)
    if isinstance(raw, io.RawIOBase):
        # write_through: text and bytes written to `sys.stdout.buffer` keep their order.
        sys.stdout = io.TextIOWrapper(io.BufferedWriter(raw), encoding=sys.stdout.encoding,
                                      errors=sys.stdout.errors, line_buffering=True, write_through=True)


def _escape_what_stdout_cannot_hold() -> None:
    """With an output encoding that cannot hold every character (PYTHONIOENCODING=ascii
    or latin-1), a name with an é (or the U+FFFD that stands for bytes that are not
    UTF-8) ended the command in an internal error. Such characters are escaped instead,
    as `\\u00e9` (UTF-16 units, so that `--json` output stays valid JSON)."""
    import codecs  # noqa: PLC0415

    try:
        name = codecs.lookup(sys.stdout.encoding or "utf-8").name
    except (LookupError, AttributeError):
        return
    reconfigure = getattr(sys.stdout, "reconfigure", None)
    if name.startswith("utf") or reconfigure is None or getattr(sys.stdout, "errors", "strict") != "strict":
        return
    codecs.register_error("mediaforge-u-escape", _u_escape)
    reconfigure(errors="mediaforge-u-escape")


def _u_escape(e: UnicodeError) -> tuple[str, int]:
    if not isinstance(e, UnicodeEncodeError):
        raise e
    out = []
    for ch in e.object[e.start:e.end]:
        cp = ord(ch)
        if cp > 0xFFFF:  # a surrogate pair, as JSON writes it
            cp -= 0x10000
            out.append(f"\\u{0xD800 + (cp >> 10):04x}\\u{0xDC00 + (cp & 0x3FF):04x}")
        else:
            out.append(f"\\u{cp:04x}")
    return "".join(out), e.end


def main(argv: list[str] | None = None) -> None:
    """Console entry point."""
    # pyarrow would load numpy (0.05-0.1 s of CPU); the command line needs none of it.
    from .._arrowload import install

    install()
    # Should numpy load after all (the sample library's songs), its OpenBLAS would start a
    # thread per core that spins for a while; the CLI does no linear algebra.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    args = _sql_after_options(sys.argv[1:] if argv is None else argv)
    empty = _empty_argument(args)
    if empty:
        _fail(empty, ExitCode.USAGE)
    if sys.stderr is None:  # started with stderr closed (2>&-): messages go nowhere, not into stdout
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - for the life of the process
    if sys.stdout is None:  # started with stdout closed (>&-): fail before doing anything
        _fail("the standard output is closed; give the command somewhere to write (such as >/dev/null)",
              ExitCode.PATH)
    _buffer_stdout()
    _escape_what_stdout_cannot_hold()
    sys.unraisablehook = _unraisable  # before the handlers that raise are set
    try:
        give_ctrl_c_back()
        from .._ctrlc import start as watch_ctrl_c

        watch_ctrl_c()  # a Ctrl-C must not wait for a DuckDB statement to end
        _prestart_workers(args)
        _prestart_walk(args)
        # The heavy imports (typer, rich, DuckDB, pyarrow) come after the workers are started.
        import typer

        from .app import app

        gc.freeze()  # what start-up made lives as long as the process: never scan it again
        gc.enable()
        # (Here, not between this block and the next: a Ctrl-C outside both, in that
        # call, ended in a traceback.)
        debug = bool(os.environ.get("MEDIAFORGE_DEBUG"))
    except KeyboardInterrupt:  # Ctrl-C while starting: nothing was done yet
        _fail(stopped(), ExitCode.INTERRUPTED)
    except Exception as e:
        # An ImportError (a C extension's start-up cut short) or, on Python 3.11, the
        # RuntimeError a class being made wraps it in (`__set_name__`, as `platform` runs
        # while rich loads), the KeyboardInterrupt its cause.
        if _caused_by_interrupt(e):
            _fail(stopped(), ExitCode.INTERRUPTED)
        raise
    try:
        rv = app(args=args, prog_name="mediaforge", standalone_mode=False)
        if was_terminated():
            # A SIGTERM whose KeyboardInterrupt Python swallowed (raised inside a callback
            # it runs for itself, such as an import lock's weakref): stopped all the same.
            _fail(stopped(), ExitCode.INTERRUPTED)
    except typer.Exit as e:
        _exit(e.exit_code)
    except SystemExit as e:
        # click ends a run whose reader left (EPIPE) with exit 1, having wrapped stdout so
        # (`mediaforge --help | true`: its own help and `--version` print outside our
        # commands): the reader leaving is no error, as for every command's output.
        if e.code == 1 and type(sys.stdout).__name__ == "PacifyFlushWrapper":
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115
            _exit(ExitCode.OK)
        raise
    except typer.Abort:
        _fail(stopped(), ExitCode.INTERRUPTED)
    except typer.TyperException as e:
        fmt = getattr(e, "format_message", None)
        text = fmt() if callable(fmt) else str(e)
        if type(e).__name__ == "NoArgsIsHelpError":  # `mediaforge`, `mediaforge tag`: the help, whole
            sys.stderr.write(text.rstrip("\n") + "\n")
            _exit(ExitCode.USAGE)
        # Usage errors (unknown option, bad value): one line, with a pointer to the help
        # of the command it is about (`mediaforge scan --help`).
        # (click calls a value that is no number "not a valid int range" when the option
        # has bounds: said plainly.)
        text = re.sub(r"is not a valid (?:int range|integer|int)\b", "is not a whole number", text)
        text = re.sub(r"is not a valid (?:float range|float)\b", "is not a number", text)
        where = getattr(getattr(e, "ctx", None), "command_path", None) or "mediaforge"
        option = getattr(e, "option_name", None)
        if option in _GLOBAL_OPTIONS and where != "mediaforge":
            value = " PATH" if option in ("--catalog", "-c") else ""
            text += f" ({option} is an option of mediaforge itself, given before the command: mediaforge {option}" \
                    f"{value} {where.split(' ', 1)[1]} ...)"
        elif (where == "mediaforge search" and type(e).__name__ == "NoSuchOption" and option
              and not option.startswith("--") and "Possible options" not in text):
            # `search paris -receipt`: a word to leave out, which click took for an option
            # (not a long option mistyped, `--limt`, which click suggests another for).
            text += " (a word to leave out, given as an argument of its own, comes after --: " \
                    "mediaforge search paris -- -receipt)"
        _fail(f"{text} (see {where} --help)", ExitCode.USAGE)
    except MediaForgeError as e:
        if debug:
            # Where it was raised, for a report; the line and its documented exit code stand.
            import traceback  # noqa: PLC0415

            traceback.print_exc()
        _fail(str(e), e.exit_code)
    except KeyboardInterrupt:
        _fail(stopped(), ExitCode.INTERRUPTED)
    except (BrokenPipeError, OutputClosed):
        # `mediaforge query ... | head`: the reader left; not an error worth a message.
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115
        _exit(ExitCode.OK)
    except Exception as e:  # noqa: BLE001 - the last line of defence: one line, not a traceback
        if _caused_by_interrupt(e):
            _fail(stopped(), ExitCode.INTERRUPTED)
        if isinstance(e, OSError) and (e.errno in _FULL or (e.errno == errno.EBADF and not e.filename)):
            # Output that could not be written (stdout on a full disk, `--output` there):
            # the catalog's own writes report their failures as exit 7 before this.
            where = os.fsdecode(e.filename) if e.filename else "the standard output"
            _fail(f"cannot write {where}: {e.strerror}", ExitCode.PATH)
        # Only a DuckDB that loaded whole can have raised its own errors. Importing it here
        # after its extension's start-up was cut short would abort the process.
        if "duckdb" in sys.modules:
            from ..catalog.store import damaged, is_corruption, is_interrupt

            if is_interrupt(e):
                _fail(stopped(), ExitCode.INTERRUPTED)
            if is_corruption(e):
                if debug:  # where it was met, above the line, as for every error
                    import traceback  # noqa: PLC0415

                    traceback.print_exc()
                _fail(str(damaged(e)), ExitCode.CATALOG_INVALID)
        if isinstance(e, UnicodeEncodeError) and "surrogate" in str(e) and _has_undecodable(args):
            # An argument holding bytes that are not UTF-8 (paths may; names, tags, SQL and
            # the catalog's own path may not), met where text was needed.
            _fail(f"{_undecodable_argument(args)} holds bytes that are not valid UTF-8; only the paths of files to "
                  "scan or act on may", ExitCode.USAGE)
        if debug:
            raise
        _fail(f"internal error: {type(e).__name__}: {e} (set MEDIAFORGE_DEBUG=1 for details)", ExitCode.INTERNAL)
    if rv == ExitCode.INTERRUPTED:
        # Typer turns a Ctrl-C outside the command itself (while it parses the options or
        # runs the app's callback) into a silent return of 130.
        _fail(stopped(), ExitCode.INTERRUPTED)
    _exit(rv if isinstance(rv, int) else ExitCode.OK)


def _caused_by_interrupt(e: BaseException) -> bool:
    """A Ctrl-C inside a C extension's start-up (DuckDB's, when `import duckdb` is cut
    short) reaches us as an ImportError whose cause is the KeyboardInterrupt."""
    seen: set[int] = set()
    cur: BaseException | None = e
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, KeyboardInterrupt):
            return True
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return False


def _sql_after_options(args: list[str]) -> list[str]:
    """`query "-- a comment\nSELECT ..."`: SQL that starts with a `--` comment would be
    taken for an option. An argument after `query` that starts with `--` and holds a
    space or a line break is no option: it goes after a `--`, the options before it."""
    if "--" in args:
        return args
    k = 0
    while k < len(args) and args[k].startswith("-"):  # the global options before the command
        k += 2 if args[k] in ("--catalog", "-c") else 1
    if k >= len(args) or args[k] != "query":
        return args
    sql = [a for a in args[k + 1:] if a.startswith("--") and any(c.isspace() for c in a)
           and not re.match(r"--[A-Za-z][\w-]*=", a)]  # `--output=my file.csv` is an option
    if len(sql) != 1:
        return args
    rest = [a for a in args[k + 1:] if a is not sql[0]]
    return [*args[:k + 1], *rest, "--", sql[0]]


def _empty_argument(args: list[str]) -> str | None:
    """An empty argument ("") names no path, tag or value: a mistake (an unset shell
    variable, most often), never the current folder. `query ""` has its own message."""
    for i, a in enumerate(args):
        if a != "":
            continue
        # The value of an option (`-o ""`) is always a mistake; after `query`, the SQL may
        # be empty and gets its own message.
        if not (i and args[i - 1].startswith("-") and args[i - 1] != "--") and "query" in args[:i]:
            continue
        return 'an empty argument ("") was given: name a path or value (an unset shell variable?)'
    return None


def _prestart_workers(args: list[str]) -> None:
    """`meta` and `thumbs` start their worker processes before anything else, so the
    workers' interpreter start-up overlaps this one's imports. A scan starts them only
    once it has found contents to extract: a rescan mostly finds none, and two idle
    interpreters starting would take the cores its walk needs."""
    words = [a for a in args if not a.startswith("-")]
    command = next((w for w in words if w in ("scan", "meta", "thumbs")), None)
    if command in (None, "scan") or "--help" in args:
        return
    try:
        from ..config import worker_count
        from ..meta.spawn import prestart

        prestart(worker_count(_threads_given(args[args.index(command) + 1:])))
    except Exception:  # noqa: BLE001 - an optimisation only; the pool starts its own workers
        pass


def _threads_given(args: list[str]) -> int | None:
    """The last `-j N` / `--threads N` (`-jN`, `--threads=N`) of a command's arguments, or
    None: `meta -j 1` starts one worker, not one per core."""
    found: int | None = None
    for k, a in enumerate(args):
        if a == "--":
            break
        value = args[k + 1] if a in ("-j", "--threads") and k + 1 < len(args) else \
            a[2:] if a.startswith("-j") and len(a) > 2 else a.partition("=")[2] if a.startswith("--threads=") else None
        if value is not None:
            found = int(value) if value.isdigit() and int(value) > 0 else None
    return found


# What `_scan_arguments` knows of the command line: options before the command, and the
# scan's flags and options that take a value. Anything else leaves the walk to the command.
_GLOBAL_FLAGS = frozenset({"--quiet", "-q"})
# The options of `mediaforge` itself, which a command does not take.
_GLOBAL_OPTIONS = frozenset({"--quiet", "-q", "--catalog", "-c", "--version"})
_SCAN_FLAGS = frozenset({"--no-hash", "--follow-symlinks", "-L", "--one-file-system", "-x", "--no-ignore", "--prune",
                         "--no-meta", "--no-thumbs", "--no-fingerprints", "--retry-failed", "--no-index", "--json"})
_SCAN_VALUED = frozenset({"--threads", "-j", "--exclude", "-e", "--thumb-size", "--timeout"})
_LONG = {"-j": "--threads", "-e": "--exclude"}


def _scan_arguments(args: list[str]):  # noqa: ANN202 - (ScanConfig, catalog path) or None
    """Read a `scan` command line as far as its walk needs, or None when it is not a plain
    one (another command, --help, a spelling this does not know). Only a guess: the scan
    command takes the walk started from it only if its own parse agrees."""
    from ..config import catalog_path, default_catalog_path
    from ..scan.launch import ScanConfig

    i, catalog = 0, None
    while i < len(args) and args[i] != "scan":
        name, eq, value = args[i].partition("=")
        if args[i] in _GLOBAL_FLAGS:
            i += 1
        elif name == "--catalog" and eq:
            catalog, i = value, i + 1
        elif args[i] in ("--catalog", "-c") and i + 1 < len(args):
            catalog, i = args[i + 1], i + 2
        else:
            return None
    paths: list[str] = []
    flags: set[str] = set()
    values: dict[str, list[str]] = {}
    rest, j, only_paths = args[i + 1:], 0, False
    while j < len(rest):
        a = rest[j]
        if only_paths or not a.startswith("-") or a == "-":
            paths.append(a)
            j += 1
            continue
        if a == "--":
            only_paths, j = True, j + 1
            continue
        name, eq, value = a.partition("=")
        if a in _SCAN_FLAGS:
            flags.add(a)
            j += 1
        elif a in _SCAN_VALUED and j + 1 < len(rest):
            values.setdefault(_LONG.get(a, a), []).append(rest[j + 1])
            j += 2
        elif eq and name.startswith("--") and name in _SCAN_VALUED:
            values.setdefault(name, []).append(value)
            j += 1
        else:
            return None
    if i >= len(args) or not paths:
        return None
    threads = (values.get("--threads") or [os.environ.get("MEDIAFORGE_THREADS")])[-1]
    config = ScanConfig(
        roots=tuple(paths), hash="--no-hash" not in flags, threads=int(threads) if threads else None,
        excludes=tuple(values.get("--exclude", ())), ignore_files="--no-ignore" not in flags,
        follow_symlinks=bool({"--follow-symlinks", "-L"} & flags),
        one_file_system=bool({"--one-file-system", "-x"} & flags), prune="--prune" in flags,
    )
    if catalog is not None and catalog.endswith("/"):
        return None  # refused as the command starts (`config.catalog_path`)
    return config, (catalog_path(catalog) if catalog is not None else default_catalog_path())


def _prestart_walk(args: list[str]) -> None:
    """A `scan` starts listing the disk now, before typer, rich, DuckDB and pyarrow load:
    on a big library the walk is the long pole, and those imports would delay its start
    by a tenth of a second or more. The command claims the walk (`claim_walk`) if its own
    parse of the options agrees, else closes it and starts its own."""
    if "scan" not in args or "--help" in args:
        return
    try:
        parsed = _scan_arguments(args)
        if parsed is not None:
            from ..scan.launch import start_early

            start_early(*parsed)
    except Exception:  # noqa: BLE001 - an optimisation only: the command reports any error itself
        pass


def _unraisable(hook_args: object) -> None:
    """Python's report of an exception it could not raise: a KeyboardInterrupt (Ctrl-C,
    SIGTERM) landing in one of its own callbacks is not printed as a traceback (`main`
    honours a SIGTERM so lost); anything else is reported as usual."""
    if isinstance(getattr(hook_args, "exc_value", None), KeyboardInterrupt):
        return
    sys.__unraisablehook__(hook_args)  # type: ignore[arg-type]


def _fail(message: str, code: int) -> NoReturn:
    # The command has ended (stopped, or on an error): a Ctrl-C from here on, a second one
    # as `timeout` sends them (it signals the process, then its group), must not break the
    # message and the exit code with a traceback (one raised as the ignoring is set is
    # taken too).
    ignore_stops()
    if code == ExitCode.INTERRUPTED and was_terminated():
        # A command's own word on the stop (a query writes nothing) is kept, as SIGTERM's.
        own = message != INTERRUPTED and message.startswith("interrupted")
        message = "terminated (SIGTERM)" + message[len("interrupted"):] if own else TERMINATED
        code = TERMINATED_EXIT
    if sys.stderr is not None:  # closed (2>&-): print would fall back to stdout, into the data
        # Escaped: a path in it may hold an ESC (terminal codes) or other control bytes.
        # One line: a newline inside (a path holding one) is escaped, never a cut that
        # would lose the rest of the path and the reason.
        _to_stderr(f"mediaforge: error: {text_of(message.strip())}")
    if code in (ExitCode.INTERRUPTED, TERMINATED_EXIT):
        # CPython notes a KeyboardInterrupt that escapes code run from a string (`exec` in
        # dataclasses, `eval` of annotations in typer: both run at start-up) as unhandled,
        # even once caught, and then ends the process with SIGINT instead of this exit
        # code. The next string evaluation clears that note.
        eval("None")  # noqa: S307 - a constant
    _exit(code)


class OutputClosed(Exception):  # noqa: N818 - a condition, not a failure
    """The reader of our standard output left (`| head`)."""


_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


def _has_undecodable(args: list[str]) -> bool:
    """Whether an argument held bytes that are not UTF-8 (Python keeps them as surrogates)."""
    return any(isinstance(a, str) and not is_text(a) for a in args)


def _undecodable_argument(args: list[str]) -> str:
    """An argument holding bytes that are not UTF-8, for a message, as the user gave it
    (`'\\xff'`), with the option before it (`'\\xff' (after -e)`): the first that names
    no file there (a path to scan or act on may hold such bytes; what failed did not)."""
    bad = [i for i, a in enumerate(args) if isinstance(a, str) and not is_text(a)]
    i = next((i for i in bad if not os.path.lexists(os.fsencode(args[i]))), bad[0])
    arg = args[i]
    if arg.startswith("--") and "=" in arg and is_text(arg.split("=", 1)[0]):
        return f"{arg.split('=', 1)[0]} {quoted(arg.split('=', 1)[1])}"
    after = args[i - 1] if i and args[i - 1].startswith("-") and args[i - 1] != "--" else None
    return f"the argument {quoted(arg)}" + (f" (after {after})" if after is not None and is_text(after) else "")


def _to_stderr(line: str) -> None:
    """Print a line on stderr; one that cannot be written (a log on a full disk, `2>/dev/full`)
    is lost, and the command still ends with its own exit code, not an internal error."""
    try:
        print(line, file=sys.stderr)
        sys.stderr.flush()
    except OSError:
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - nothing more can reach the real one


def _flush_output(code: int) -> int:
    """Flush what is still buffered for stdout now, where a failure can be reported,
    rather than in the interpreter's shutdown (an "Exception ignored" and exit 120)."""
    if sys.stdout is None:
        return code
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        pass
    except OSError as e:
        if code == ExitCode.OK:
            _to_stderr(f"mediaforge: error: cannot write the standard output: {e.strerror}")
            code = ExitCode.PATH
    else:
        return code
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - the buffer is lost either way
    return code


def _exit(code: int) -> NoReturn:
    """End the process with `code`, ignoring Ctrl-C from here on: the command's outcome
    is settled, and CPython resets SIGINT to its default action late in its shutdown,
    so a Ctrl-C then would end a finished command by SIGINT, with no message. One during
    the last flush of the output (a slow reader) ends it without the rest, with `code`
    all the same (`_entry.settle`)."""
    settle(code)
    code = _flush_output(code)
    settle(code)
    ignore_stops()  # (one that was already on its way: the outcome still stands)
    if owns_process() and not _other_threads():
        _leave(code)
    sys.exit(code)


def _other_threads() -> bool:
    """Whether a thread the interpreter would wait for at exit still runs."""
    import threading  # noqa: PLC0415

    main = threading.main_thread()
    return any(t is not main and not t.daemon and t.is_alive() for t in threading.enumerate())


def _leave(code: int) -> NoReturn:
    """End the process now, without the interpreter's teardown: its collection of every
    object, and the freeing of memory the kernel takes back whole at exit anyway (a
    rescan's view of a million catalog rows, 0.05 s). Everything the teardown would do that
    matters is done first: the `atexit` functions run (workers started ahead and never
    used are stopped), and the standard streams are flushed. The catalog needs nothing:
    every command closes it (or, cut short, leaves only what DuckDB's log makes whole
    at the next open, as after a kill), and files written are closed by then."""
    import atexit  # noqa: PLC0415

    atexit._run_exitfuncs()  # noqa: SLF001 - the interpreter's own exit, minus the teardown
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):  # lost or closed: `_flush_output` already told of stdout
            pass
    os._exit(code)
