"""MediaForge's exceptions, and the exit code each one maps to on the command line.

The Rust core raises these through the binding (its one error enum maps one-to-one
onto the classes marked "core" below), so callers catch one hierarchy.
"""

from __future__ import annotations

import bisect
import re
import unicodedata


def first_line(e: BaseException | str) -> str:
    """The first non-empty line of an error's text (DuckDB's run to several lines), or
    its class name when it has none: what a one-line message can hold. An error DuckDB
    wraps as JSON (`Async write failed ...: {"exception_type": ...}`) is told by the
    message inside."""
    text = str(e).strip()
    if not text:
        return type(e).__name__ if isinstance(e, BaseException) else "error"
    return _unwrapped(text.split("\n")[0].rstrip("\r"))


_ERROR_KIND = re.compile(r"^[A-Z][A-Za-z ]{0,40} Error: ")


def _unwrapped(text: str) -> str:
    """`IO Error: Async write failed for range [...]: {"exception_type":"IO",
    "exception_message":"Could not write file ...",...}` as `IO Error: Could not write
    file ...`; any other line as it is (one quoting such JSON from a file's name, which
    goes on after it, too)."""
    import json

    at = text.find(': {"exception_type"')
    if at < 0:
        return text
    try:
        inner, end = json.JSONDecoder().raw_decode(text, at + 2)
    except ValueError:
        return text
    if text[end:].strip():
        return text
    message = inner.get("exception_message") if isinstance(inner, dict) else None
    if not isinstance(message, str) or not message.strip():
        return text
    kind = _ERROR_KIND.match(text)
    return (kind.group(0) if kind else "") + message.strip()


_CARET = re.compile(r"\^+")
_LINE = re.compile(r"LINE (\d+): ")
_SET_LAMBDA = re.compile(r"Use SET lambda_syntax\s*=\s*'?\w+'? to revert to the deprecated behavior\.?")
_MORE_INFO = re.compile(r"For more info(?:rmation)?, (?:visit|see) \S+\s*")
# DuckDB's advice to install an extension or SET an option: `query` does neither.
_INSTALL = re.compile(r"Please try installing and loading the \w+ extension by running: INSTALL \w+; LOAD \w+;"
                      r"(?: Alternatively, consider enabling auto-install and auto-load by running: "
                      r"SET autoinstall_known_extensions=1; SET autoload_known_extensions=1;)?")
_SET_OPTION = re.compile(r"Use \"?SET \w+ TO \w+\"? to increase the maximum[^.]*\.?")


# DuckDB's own line that shows where in the statement an error is.
_LINE_START = re.compile(r"\r?\nLINE \d+: ")


def _quoted_breaks_escaped(message: str) -> str:
    """A line break inside a name DuckDB quotes back ('new\\nline.txt', "it's\\nodd")
    written `\\n`, as our own messages write one: else it reads as a space, and as
    another name. A quote opens a span after a non-word character (the apostrophe of
    "can't" opens none) and the same quote closes it before one, so an apostrophe
    inside a double-quoted name, or one inside a single-quoted name before a letter
    (`'it's'`), is part of the name; a span that does not close before DuckDB's
    `LINE n:` line, or at all, is not a name, and its breaks stay line breaks. Each
    quote is looked at once (the closing ones, breaks and `LINE` lines found up front):
    a message quoting back a statement of thousands of quotes costs no more than its length."""
    if "\n" not in message:
        return message

    def word(k: int) -> bool:
        return 0 <= k < len(message) and (message[k].isalnum() or message[k] == "_")

    quotes = [k for k, c in enumerate(message) if c in "'\""]
    closers = {q: [k for k in quotes if message[k] == q and not word(k + 1)] for q in "'\""}
    breaks = [k for k, c in enumerate(message) if c == "\n"]
    lines = [m.start() for m in _LINE_START.finditer(message)]

    def between(points: list[int], a: int, b: int) -> bool:  # any point in (a, b)
        k = bisect.bisect_right(points, a)
        return k < len(points) and points[k] < b

    out: list[str] = []
    done = past = 0
    for k in quotes:
        if k < past or word(k - 1):
            continue
        ends = closers[message[k]]
        at = bisect.bisect_right(ends, k)
        if at == len(ends) or between(lines, k - 1, ends[at]):
            continue  # never closed, or not before DuckDB's own line: no name
        end = ends[at]
        if between(breaks, k, end):
            out += [message[done:k], message[k:end + 1].replace("\r", "\\r").replace("\n", "\\n")]
            done = end + 1
        past = end + 1  # its closing quote opens nothing
    return "".join(out) + message[done:]


def sql_error_text(e: BaseException, limit: int = 400, where: bool = True) -> str:
    """DuckDB's error as one line, keeping what its further lines say: the suggestion
    ("Did you mean ..."), the candidates, the reason a download failed, and where in
    the statement a syntax error is (as line and column, for the caret cannot point;
    `where` False: not at all). Lines end at a newline only: a U+2028 in the statement
    quoted back is part of its line."""
    message = _quoted_breaks_escaped(str(e))
    raw = [ln for ln in message.split("\n") if ln.strip()]
    if not raw:
        return first_line(e)
    text = ""
    for k, ln in enumerate(raw):
        item = ln.strip()
        line = _LINE.match(item)
        if _CARET.fullmatch(item):
            continue
        if line is not None and not where:
            continue
        if line is not None:
            at = ""
            # DuckDB shows a long line cut ("LINE 1: ...end of it"): its caret counts
            # from the cut, not from the line's start, so only the line is given then.
            # DuckDB counts the caret in display cells (a tab 0, a wide character 2).
            excerpt = item[line.end():]
            cut = excerpt.startswith("...") or "\t" in excerpt or any(
                unicodedata.east_asian_width(c) in "WF" for c in excerpt)
            if not cut and k + 1 < len(raw) and _CARET.fullmatch(raw[k + 1].strip()):
                at = f", column {raw[k + 1].index('^') - ln.index(item) - line.end() + 1}"
            item = f"(at line {line.group(1)}{at})"
        item = _MORE_INFO.sub("", item).strip()
        if item:
            # indented lines after the first are the items of a list: comma-separated
            listed = ln[:1].isspace() and k > 0 and raw[k - 1][:1].isspace() and not text.endswith(":")
            text += (", " if listed else " " if text else "") + item
    # DuckDB's way back to `x -> ...` lambdas is a SET, which `query` refuses.
    text = _SET_LAMBDA.sub("(write it `lambda x: ...`: query runs no SET)", text)
    text = _INSTALL.sub("(MediaForge installs and loads no extension: nothing is downloaded at run time)", text)
    text = _SET_OPTION.sub("(query runs no SET: simplify the statement)", text)
    return text if len(text) <= limit else text[:limit - 1].rstrip() + "\u2026"


def path_text(raw: bytes) -> str:
    """A raw path for one line of text: bytes that are not UTF-8 shown as \\xNN, control
    characters (a newline in a name) escaped, and so a backslash itself, doubled (as
    `ls -b` shows names), so two names never look alike (`a\\nb` is a newline, `a\\\\nb` a
    backslash and an n) and one path is always one line."""
    text = raw.decode("utf-8", "surrogateescape").replace("\\", "\\\\")
    return printable(text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace"))


def path_text_spelled(raw: bytes) -> str:
    """`path_text`, with every character outside ASCII spelled out as `\\uXXXX`: for two
    paths that `path_text` shows alike, names that differ only in how Unicode composes
    them (`é` as one character, U+00E9, or as `e` and a combining accent, U+0301)."""
    return "".join(c if ord(c) < 0x80 else f"\\u{ord(c):04x}" if ord(c) <= 0xFFFF else f"\\U{ord(c):08x}"
                   for c in path_text(raw))


def paths_apart(raws: list[bytes]) -> list[str]:
    """`path_text` of each path, those that would show alike though their bytes differ
    spelled out (`path_text_spelled`), so that no two look the same."""
    import unicodedata

    texts = [path_text(r) for r in raws]
    looks = [unicodedata.normalize("NFC", t) for t in texts]  # what shows: é either way
    seen: dict[str, set[bytes]] = {}
    for look, r in zip(looks, raws):
        seen.setdefault(look, set()).add(r)
    return [path_text_spelled(r) if len(seen[look]) > 1 else t for t, look, r in zip(texts, looks, raws)]


_SHELL_SAFE = re.compile(rb"[\w@%+=:,./-]+", re.ASCII)


def shell_word(raw: bytes) -> str:
    """A raw path as one word a POSIX shell reads back as those bytes, on one line: as it
    is when nothing in it is special, else quoted; a path with bytes that are not UTF-8 or
    control characters (a newline) in bash's `$'...'` form, with them as `\\xNN`."""
    if _SHELL_SAFE.fullmatch(raw):
        return raw.decode("ascii")
    text = raw.decode("utf-8", "surrogateescape")
    if text.isprintable() and is_text(text):
        return "'" + text.replace("'", "'\\''") + "'"
    out = []
    for c in text:
        if c in "\\'":
            out.append("\\" + c)
        elif c.isprintable() and is_text(c):
            out.append(c)
        else:  # a control character, or a byte that is not UTF-8 (U+DC80...)
            out.append("".join(f"\\x{b:02x}" for b in c.encode("utf-8", "surrogateescape")))
    return "$'" + "".join(out) + "'"


def raw_b64(raw: bytes) -> str | None:
    """The exact bytes of a path whose text cannot hold them (not UTF-8), base64, for
    JSON's `*_raw` fields; None for a path that is UTF-8."""
    try:
        raw.decode("utf-8")
        return None
    except UnicodeDecodeError:
        import base64

        return base64.b64encode(raw).decode("ascii")


def text_of(s: str) -> str:
    """`s` for a message: the bytes of a command-line argument that are not UTF-8 (which
    Python carries as U+DC80..U+DCFF) shown as \\xNN, control characters escaped."""
    try:  # (a backslash stays one: a message's paths have theirs doubled by `path_text` already)
        return printable(s.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace"))
    except UnicodeEncodeError:  # another lone surrogate: not from a byte
        return printable(s.encode("utf-8", "backslashreplace").decode("ascii", "backslashreplace"))


def quoted(s: str) -> str:
    """`text_of(s)` in quotes, as a name or value from the user is shown in a message."""
    return f"'{text_of(s)}'"


def printable(text: str) -> str:
    """`text` with its control characters escaped (`\\n`, `\\x1b`): one line that cannot
    move the cursor or clear the screen."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c == " " else _escaped(c) for c in text)


def _escaped(c: str) -> str:
    """One character that does not print, as an escape: `\\n`, `\\x1b`; from U+0080 to
    U+00FF (C1 controls, the no-break space, the soft hyphen) `\\u0085`, since `\\x85`
    is how a byte that is not UTF-8 shows (`path_text`), and two names must never look alike."""
    if 0x80 <= ord(c) <= 0xFF:
        return f"\\u{ord(c):04x}"
    return c.encode("unicode_escape").decode("ascii")


def is_text(s: str) -> bool:
    """False when `s` holds bytes that are not UTF-8 (Python carries them from arguments as
    lone surrogates, U+DC80...): fine in a file path, not storable as text."""
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class ExitCode:
    """Documented process exit codes (see docs/cli.md)."""

    OK = 0
    INTERNAL = 1
    USAGE = 2
    PATH = 3
    CATALOG_BUSY = 4
    CATALOG_INVALID = 5
    SQL = 6
    CATALOG_WRITE = 7
    PARTIAL = 8
    INTERRUPTED = 130


class MediaForgeError(Exception):
    """Base class: every error MediaForge raises on purpose."""

    exit_code = ExitCode.INTERNAL


class PathNotFoundError(MediaForgeError, FileNotFoundError):
    """A path given by the user does not exist (core)."""

    exit_code = ExitCode.PATH


class PathPermissionError(MediaForgeError, PermissionError):
    """A path given by the user cannot be read (core)."""

    exit_code = ExitCode.PATH


class PathIOError(MediaForgeError, OSError):
    """Another I/O failure on a path given by the user (core)."""

    exit_code = ExitCode.PATH


class InvalidInputError(MediaForgeError, ValueError):
    """Malformed input: a bad exclude pattern, a bad option value (core)."""

    exit_code = ExitCode.USAGE


class InternalError(MediaForgeError):
    """A bug: an invariant of MediaForge itself did not hold (core)."""


class CatalogError(MediaForgeError):
    """Something is wrong with the catalog file."""

    exit_code = ExitCode.CATALOG_INVALID


class CatalogBusyError(CatalogError):
    """Another process has the catalog open for writing."""

    exit_code = ExitCode.CATALOG_BUSY


class IndexBusyError(MediaForgeError):
    """Another process is writing the catalog's search index (its writer lock stayed
    held past the wait). Busy, as a catalog is, but not one: what waits for a busy
    catalog to open does not wait for this."""

    exit_code = ExitCode.CATALOG_BUSY


class CatalogInvalidError(CatalogError):
    """The file is not a DuckDB database, is damaged, or is not a MediaForge catalog."""


class CatalogVersionError(CatalogError):
    """The catalog was written by a newer MediaForge."""


class CatalogMissingError(CatalogError):
    """No catalog exists yet at the path (read-only commands do not create one)."""

    exit_code = ExitCode.PATH


class CatalogReadOnlyError(CatalogError):
    """A command that writes the catalog found it on a read-only file system."""

    exit_code = ExitCode.PATH


class CatalogWriteError(CatalogError):
    """A write to the catalog failed (disk full, I/O error); committed work is kept."""

    exit_code = ExitCode.CATALOG_WRITE


class QueryError(MediaForgeError):
    """A user's SQL statement failed."""

    exit_code = ExitCode.SQL


class Interrupted(MediaForgeError):
    """The user pressed Ctrl-C; committed work is kept."""

    exit_code = ExitCode.INTERRUPTED
