"""Opening the catalog safely, and the bulk writes a scan makes.

A catalog is one DuckDB file. DuckDB takes an exclusive file lock for a writer, which
is what turns a second writer into a clean "catalog is busy" error here. Every write is
a transaction over an Arrow batch, so `kill -9` at any moment leaves the last committed
batch in place and the next scan picks up the rest.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from .. import _ctrlc, _dbload  # noqa: F401 - _dbload before duckdb: holds Ctrl-C back while it loads

import duckdb
import pyarrow as pa

from ..config import catalog_path, search_dir
from ..errors import (
    CatalogBusyError,
    CatalogInvalidError,
    CatalogMissingError,
    CatalogReadOnlyError,
    CatalogWriteError,
    CatalogVersionError,
    InvalidInputError,
    MediaForgeError,
    first_line,
    is_text,
    quoted,
)
from ..fsops import leads_nowhere, link_to_nothing
from .schema import ALL_TABLES, APPLICATION, CORE_TABLES, MIGRATIONS, SCHEMA_VERSION

_LOCK = re.compile(r"Could not set lock on file|Conflicting lock", re.I)
_NOT_DB = re.compile(r"not a valid DuckDB database|Corrupt database file|database file.*corrupt|"
                     r"invalid (storage|block|database)|checksum|Could not read enough bytes", re.I)
_HOLDER = re.compile(r"held in (.+?) \(PID (\d+)\)")
_WAL = re.compile(r"while replaying WAL file|This WAL was created for|WAL checkpoint iteration", re.I)
_FULL = re.compile(r"No space left on device|Disk quota exceeded", re.I)
# What fails a log's replay without any fault in the log: it replays once this is fixed.
_NOT_THE_LOG = re.compile(_FULL.pattern + r"|Permission denied|could not allocate|Out of Memory|File too large", re.I)
# A DuckDB file's first block: a checksum, then its magic. Its three header blocks come
# before any data: a shorter file was cut short as it was made, and holds no table.
_DUCK_MAGIC = (8, b"DUCK")
_DUCK_HEADERS = 3 * 4096
# A DuckDB write-ahead log opens with its version entry: field 100 (two bytes, little
# endian), the entry type WAL_VERSION (98). The entry, with the database's identifier,
# ends before byte 48; a log longer than that which does not open so is damaged, and
# DuckDB reads such a log as empty: the commits only it holds would be lost unsaid.
_WAL_HEAD = b"\x64\x00\x62"
_WAL_HEAD_ENTRY = 48


def check_log(path: Path | str) -> None:
    """Refuse (`CatalogInvalidError`) a catalog whose write-ahead log beside it is damaged
    at its start (zeroed by a crash, overwritten), which DuckDB would skip without a word.
    A log short enough to be one cut as it was begun holds no commit: left to DuckDB."""
    wal = f"{path}.wal"
    try:
        with open(wal, "rb") as f:
            head = f.read(_WAL_HEAD_ENTRY + 1)
    except FileNotFoundError:
        return
    if len(head) > _WAL_HEAD_ENTRY and not head.startswith(_WAL_HEAD):
        raise CatalogInvalidError(
            f"the catalog's write-ahead log {wal} is damaged at its start (DuckDB would skip it, and the changes "
            f"only it holds with it); restore it from a backup, or move {wal} aside (not the catalog) and run this "
            "again: the catalog opens as it was saved last")


def empty_catalog(path: Path | str) -> str | None:
    """Why the regular file at `path` holds no catalog to keep, or None: 0 bytes (a first
    scan killed as it made the file, `mktemp`), or a DuckDB file whose making stopped before
    its header blocks were all written (a disk full as a first scan began), with no log
    beside it: nothing was ever committed to it. Raises OSError if it cannot be read, and
    `CatalogInvalidError` for a catalog cut short that held data: its headers count
    checkpoints, or a log of changes lies beside the empty file. Such a file was replaced
    by a new catalog, its tags and collections gone without a word."""
    size = os.stat(path).st_size
    wal = f"{path}.wal"
    if size == 0:
        with open(path, "rb") as f:
            if f.read(1):  # a file whose size says nothing (procfs, sysfs): it is no catalog
                return None
        if os.path.isfile(wal) and os.path.getsize(wal) > 0:
            raise CatalogInvalidError(
                f"the catalog file {path} is empty but its log {wal} holds changes: the file was emptied after it "
                "held data; restore it from a backup, or move both aside and scan again")
        return "0 bytes"
    if size >= _DUCK_HEADERS or os.path.lexists(wal):
        return None
    at, magic = _DUCK_MAGIC
    with open(path, "rb") as f:
        head = f.read(_DUCK_HEADERS)
    if head[at:at + len(magic)] != magic:
        return None
    # The two database headers after the file's own (4 KiB each): a checksum, then the
    # checkpoint count, which is 0 until something is committed.
    if any(len(head) >= start + 16 and int.from_bytes(head[start + 8:start + 16], "little")
           for start in (4096, 8192)):
        raise CatalogInvalidError(
            f"the catalog file {path} is damaged (cut short to {size:,} bytes after it held data); restore it from "
            "a backup, or move it aside and scan again")
    # Cut short within its first header: its search index beside it tells it held data.
    index = search_dir(path)
    with suppress(OSError):
        if index.is_dir() and any(index.iterdir()):
            raise CatalogInvalidError(
                f"the catalog file {path} is damaged (cut short to {size:,} bytes, though its search index {index} "
                "shows it held data); restore it from a backup, or move it aside and scan again")
    return "a first scan stopped as it made it: no table in it"


def _unlink_unless_held(path: Path) -> None:
    """Remove an empty catalog file, unless a process holds it: one making the catalog at
    this moment (DuckDB locks the file as it writes the headers) has it busy."""
    import fcntl

    fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    try:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise CatalogBusyError(f"catalog is busy: another process is making {path}; run this again once it "
                                   "ends") from None
        path.unlink()
    finally:
        os.close(fd)


def _classify_open_error(path: Path, err: Exception) -> MediaForgeError:
    text = str(err)
    if _LOCK.search(text):
        holder = _HOLDER.search(text)
        # DuckDB names the holder: a MediaForge command, or any program with DuckDB.
        who = f" (held by PID {holder.group(2)}, {os.path.basename(holder.group(1))})" if holder else ""
        return CatalogBusyError(f"catalog is busy: another process is using {path}{who}; run this again once it ends")
    if "Read-only file system" in text:  # a command that writes it, on a read-only medium
        return CatalogReadOnlyError(f"cannot write the catalog {path}: it is on a read-only file system"
                                    + (" (commands that only read it, such as query and stats, work)"
                                       if path.exists() else ""))
    if _WAL.search(text) and not _NOT_THE_LOG.search(text):
        # The log of the last commits, not the catalog, is what fails: moved aside, the
        # catalog opens as it was at its last checkpoint (what only the log holds is lost).
        return CatalogInvalidError(
            f"the catalog's write-ahead log {path}.wal cannot be replayed ({first_line(err)}): it is damaged, or "
            f"older or newer than the catalog (a catalog restored from a backup beside it?); move {path}.wal "
            "aside (not the catalog) and run this again: the catalog opens as it was saved last, without the "
            "changes only that log holds")
    if _FULL.search(text):
        return CatalogWriteError(f"cannot write the catalog {path}: its disk is full ({first_line(err)}); "
                                 "free some space and run this again")
    if _NOT_DB.search(text):
        return CatalogInvalidError(f"{path} is not a readable DuckDB catalog: {first_line(err)}; if it is a catalog "
                                   "a crash cut short, move it aside and scan again")
    return CatalogInvalidError(f"cannot open catalog {path}: {first_line(err)}")


def streamed(reader: pa.RecordBatchReader) -> Iterator[pa.RecordBatch]:
    """The batches of a DuckDB result read through Arrow. An error DuckDB meets after the
    first batch (a CAST failing on a later row) reaches Arrow's reader as an OSError,
    ArrowException or RuntimeError: it comes out as the duckdb.Error it is, with its text,
    as one met before the first batch does."""
    batches = iter(reader)
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except (pa.ArrowException, OSError, RuntimeError) as e:
            raise duckdb.Error(str(e)) from None
        yield batch


def is_interrupt(e: BaseException) -> bool:
    """DuckDB turns a Ctrl-C during a query into its own errors; recognise them, and a
    statement refused after one because the interrupt aborted its transaction."""
    if isinstance(e, duckdb.InterruptException):
        return True
    text = str(e)
    if _ctrlc.signalled() and isinstance(e, duckdb.TransactionException) and "transaction is aborted" in text:
        return True
    return "Query interrupted" in text or "KeyboardInterrupt" in text or "INTERRUPT Error" in text


def is_corruption(e: BaseException) -> bool:
    """A damaged catalog file shows up at the first read of a bad block, not at open."""
    return isinstance(e, (duckdb.Error, RuntimeError)) and tells_of_corruption(e)


# Errors of a statement and its data, never of the file: a query's own `error('...')`, a
# value that does not convert, a name not bound; whatever their text says.
_STATEMENT_ERRORS = (duckdb.InvalidInputException, duckdb.ConversionException, duckdb.BinderException,
                     duckdb.ParserException, duckdb.CatalogException, duckdb.ConstraintException)


def tells_of_corruption(e: BaseException) -> bool:
    """Whether an error's text is DuckDB's about a damaged file, whoever passed it on (the
    Rust core, reading the catalog's rows through Arrow, wraps it in its own error). Not
    in the values it quotes (a file named `checksum.jpg` a CAST could not read), nor in a
    statement's own errors."""
    if isinstance(e, _STATEMENT_ERRORS):
        return False
    return bool(_NOT_DB.search(re.sub(r"'(?:[^']|'')*'", "''", str(e))))


# The catalog this process opened last: the one a damaged block met anywhere is in.
_opened: Path | None = None


def damaged(e: BaseException, path: Path | str | None = None) -> CatalogInvalidError:
    """The one message for a catalog whose file turned out damaged while in use (`path`:
    else the catalog this process opened last)."""
    path = path if path is not None else _opened
    where = f" {path}" if path is not None else ""
    return CatalogInvalidError(f"the catalog file{where} is damaged ({first_line(e)}); restore it from a backup, "
                               "or move it aside and scan again")


def _reraise_unless_duckdb(e: BaseException) -> None:
    """Inside an `except (duckdb.Error, RuntimeError)`: a Ctrl-C becomes KeyboardInterrupt,
    and anything that is not a DuckDB error goes on unchanged."""
    if is_interrupt(e):
        raise KeyboardInterrupt from None
    if not isinstance(e, duckdb.Error):
        raise e


class Catalog:
    """An open MediaForge catalog. Use `open_catalog` to get one."""

    def __init__(self, path: Path, con: duckdb.DuckDBPyConnection, read_only: bool) -> None:
        self.path = path
        self.con = con
        self.read_only = read_only
        # DuckDB draws its own progress bar where it takes the process for an interactive
        # shell (a program run by `python -c`, a notebook), into the results on stdout.
        con.execute("SET enable_progress_bar = false")
        # The transaction `transaction` began and has not ended, as a token of its own.
        self._txn: object | None = None
        # The file opened (device, inode): a writer that finds another, or none, at its
        # path when it ends wrote into a file no name leads to (`__exit__`).
        self._file: tuple[int, int] | None = None

    # -- opening -------------------------------------------------------------------

    @classmethod
    def open(cls, path: Path | str, *, read_only: bool = False, threads: int | None = None,
             create: bool = True) -> Catalog:
        """Open (and, for writers, create or migrate) the catalog at `path` (see
        `config.catalog_path`)."""
        global _opened
        path = _opened = catalog_path(path)
        if not is_text(str(path)):
            raise InvalidInputError(f"the catalog path {quoted(str(path))} is not valid UTF-8: DuckDB cannot open it; "
                                    "choose a catalog path of UTF-8 text")
        try:
            dangling = link_to_nothing(str(path))
            if dangling is not None:
                # A catalog (or its folder) on a disk not mounted, say: never a new
                # catalog made behind the link, nor an empty one reported on.
                what = "it" if dangling == str(path) else f"its folder {dangling}"
                raise CatalogMissingError(f"no catalog at {path}: {what} is {leads_nowhere(dangling)}")
            if read_only and not path.exists():
                raise CatalogMissingError(f"no catalog at {path}: run `mediaforge scan PATH` first")
            if path.exists() and path.is_dir():
                raise CatalogInvalidError(f"{path} is a folder, not a catalog file")
            for p in (path, Path(f"{path}.wal")):
                # DuckDB would wait forever on a FIFO's other end, or read a device.
                if p.exists() and p.is_dir():
                    raise CatalogInvalidError(f"{p} is a folder, not the catalog's write-ahead log: move it away")
                if p.exists() and not p.is_file():
                    raise CatalogInvalidError(f"{p} is not a regular file (a FIFO, socket or device): not a catalog")
            if path.exists():
                check_log(path)
            empty = path.exists() and empty_catalog(path)
            if empty:
                # Nothing in it: a first scan killed as it made the file, or one that met a
                # full disk as it wrote the headers; or `mktemp`.
                if read_only:
                    raise CatalogMissingError(f"the catalog at {path} is empty ({empty}): run `mediaforge scan PATH` "
                                              "first")
                _unlink_unless_held(path)
            elif path.is_file():
                with open(path, "rb") as f:
                    head = f.read(16)
                if head == b"SQLite format 3\x00":
                    raise CatalogInvalidError(f"{path} is an SQLite database, not a DuckDB catalog")
                if head[8:12] != b"DUCK":
                    # DuckDB opens a CSV, Parquet or JSON file named as the database as an
                    # in-memory one with views over it, and says nothing of the file.
                    raise CatalogInvalidError(f"{path} is not a readable DuckDB catalog: it is not a DuckDB file "
                                              "(a CSV, Parquet or JSON file, or other data?)")
        except OSError as e:  # a folder on the way that may not be entered, a name too long ...
            raise CatalogInvalidError(f"cannot open catalog {path}: {e.strerror}") from None
        if not read_only:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except (FileExistsError, NotADirectoryError):  # a file where a folder on the way goes
                raise CatalogInvalidError(f"cannot create the catalog's folder {path.parent}: it, or a folder above "
                                          "it, is a file, not a folder") from None
            except OSError as e:
                raise CatalogInvalidError(f"cannot create the catalog's folder {path.parent}: {e.strerror}") from None
        # Nothing is downloaded at run time: a query naming sqlite_scan or an https:// file
        # would otherwise fetch and load an extension (parquet, json and icu are built in).
        config: dict[str, Any] = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}
        if threads:
            config["threads"] = threads
        try:
            con = duckdb.connect(str(path), read_only=read_only, config=config)
        except duckdb.Error as e:
            if is_interrupt(e):
                raise KeyboardInterrupt from None
            raise _classify_open_error(path, e) from None
        cat = cls(path, con, read_only)
        with suppress(OSError):
            st = os.stat(path)
            cat._file = (st.st_dev, st.st_ino)
        _ctrlc.watch(cat)
        try:
            cat._check_schema(create)
        except _NeedsUpgrade as e:
            con.close()
            # A reader of a catalog an older MediaForge wrote upgrades it first, as any
            # writer would, unless another process has it open (then it says so).
            try:
                cls.open(path, threads=threads).close()
            except CatalogBusyError:
                raise CatalogVersionError(str(e)) from None
            except MediaForgeError as why:  # a read-only medium, a folder not ours to write
                return cls._upgraded_in_memory(path, e, why, config)
            return cls.open(path, read_only=True, threads=threads)
        except BaseException:
            con.close()
            raise
        return cat

    def _foreign(self) -> bool:
        """Whether the database holds schemas, tables or views outside `main`: another
        program's, never made into a catalog beside them."""
        ((n,),) = self.con.execute("""
            SELECT count(*) FROM duckdb_schemas()
            WHERE database_name = current_database() AND NOT internal AND schema_name <> 'main'""").fetchall()
        return n > 0

    def _tables(self) -> set[str]:
        rows = self.con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'"
        ).fetchall()
        return {r[0] for r in rows}

    @classmethod
    def _upgraded_in_memory(cls, path: Path, e: _NeedsUpgrade, why: MediaForgeError,
                            config: dict[str, Any]) -> Catalog:
        """A catalog of an older schema that cannot be upgraded where it is (a read-only
        medium, another user's file), for a command that only reads it: copied into
        memory, upgraded there, and read from there (the file is left as it is). The
        copy keeps every row: the steps that drop rows for the next scan to extract again
        are left out, since nothing extracts into it. Made once a process (a command that
        opens the catalog twice reads the one copy), and said so on stderr: the copy costs
        memory and time a catalog upgraded once does not."""
        import sys

        key = str(path)
        master = _IN_MEMORY.get(key)
        if master is None:
            master = duckdb.connect(":memory:", config=config)
            master.execute("SET enable_progress_bar = false")  # (the copy below: see `__init__`)
            try:
                master.execute("ATTACH ? AS mf_old (READ_ONLY)", [key])
                master.execute("COPY FROM DATABASE mf_old TO memory")
                master.execute("DETACH mf_old")
                version = int(master.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0])
                cls(path, master, False)._migrate(version, keep_rows=True)
            except (duckdb.Error, MediaForgeError) as err:
                master.close()
                if isinstance(err, duckdb.Error):
                    _reraise_unless_duckdb(err)
                raise CatalogVersionError(
                    f"{e.head}, and cannot be upgraded here ({why}), nor in memory ({first_line(err)}); run any "
                    "command once where the catalog can be written, to upgrade it") from None
            except BaseException:
                master.close()
                raise
            _IN_MEMORY[key] = master
            print(f"mediaforge: warning: {e.head}, and cannot be upgraded here ({first_line(why)}): read from a "
                  "copy upgraded in memory; run any command once where the catalog can be written, to upgrade it "
                  "for good", file=sys.stderr)
        cat = cls(path, master.cursor(), True)
        _ctrlc.watch(cat)
        return cat

    def _check_schema(self, create: bool = True) -> None:
        try:
            tables = self._tables()
        except (duckdb.Error, RuntimeError) as e:
            _reraise_unless_duckdb(e)
            raise _classify_open_error(self.path, e) from None
        if not tables and self._foreign():
            raise CatalogInvalidError(f"{self.path} is a DuckDB database but not a MediaForge catalog (it holds "
                                      "schemas or tables of its own)")
        if not tables:
            if self.read_only or not create:
                # A first scan cut short before it wrote anything leaves an empty database.
                raise CatalogMissingError(f"the catalog at {self.path} is empty: run `mediaforge scan PATH` first")
            self._create()
            return
        if "meta" not in tables:
            raise CatalogInvalidError(f"{self.path} is a DuckDB database but not a MediaForge catalog")
        meta = dict(self.con.execute("SELECT key, value FROM meta").fetchall())
        if meta.get("application") != APPLICATION or "schema_version" not in meta:
            raise CatalogInvalidError(f"{self.path} is a DuckDB database but not a MediaForge catalog")
        # ASCII digits as written, alone (`int` would take " 28" and Arabic-Indic digits).
        if not re.fullmatch("[0-9]{1,9}", meta["schema_version"] or ""):
            raise CatalogInvalidError(f"catalog {self.path} is damaged: its schema_version "
                                      f"{meta['schema_version']!r} is not a number")
        version = int(meta["schema_version"])
        if version < 1:  # (every catalog ever written says 1 or more)
            raise CatalogInvalidError(f"catalog {self.path} is damaged: its schema_version "
                                      f"{meta['schema_version']!r} is no version (they start at 1)")
        if version > SCHEMA_VERSION:
            raise CatalogVersionError(
                f"catalog {self.path} has schema version {version}, newer than this MediaForge "
                f"understands ({SCHEMA_VERSION}); upgrade MediaForge"
            )
        missing = [t for t in (ALL_TABLES if version == SCHEMA_VERSION else CORE_TABLES) if t not in tables]
        if missing:
            raise CatalogInvalidError(f"catalog {self.path} is damaged: table(s) {', '.join(missing)} missing")
        if version < SCHEMA_VERSION:
            if self.read_only:
                raise _NeedsUpgrade(f"catalog {self.path} is at schema version {version}")
            self._migrate(version)
        if not self.read_only:
            # A writer holds the lock, so a scan still marked running died with its process;
            # its `errors`, as for any scan that did not complete, are the rows it wrote.
            with self.transaction() as con:
                con.execute("UPDATE scans SET status = 'interrupted', errors = (SELECT count(*) FROM scan_errors e "
                            "WHERE e.scan_id = scans.scan_id) WHERE status = 'running'")

    def _create(self) -> None:
        """Make the schema in a new catalog: from its statement at this version (`fresh`),
        not by replaying every migration, unless that statement is of another version."""
        from . import fresh  # noqa: PLC0415 - only a new catalog needs it

        if fresh.VERSION != SCHEMA_VERSION:
            self._migrate(0)
            return
        with self.transaction():
            for stmt in fresh.STATEMENTS:
                self.con.execute(stmt)

    def _migrate(self, current: int, keep_rows: bool = False) -> None:
        """Run the migrations from `current` on. `keep_rows`: without the steps that drop
        `media` rows for the next scan to extract again, for a copy nothing will extract
        into (`_upgraded_in_memory`)."""
        with self.transaction():
            for version in range(current + 1, SCHEMA_VERSION + 1):
                for stmt in MIGRATIONS[version]:
                    if keep_rows and _DROPS_ROWS.match(stmt):
                        continue
                    self.con.execute(stmt)
                self.con.execute(
                    "INSERT OR REPLACE INTO meta VALUES ('application', ?), ('schema_version', ?)",
                    [APPLICATION, str(version)],
                )
            # A migration may leave contents to extract again: the next scan looks for them.
            self.con.execute("DELETE FROM meta WHERE key = 'extracted_through_scan'")

    def on_own_connection(self) -> Catalog:
        """This catalog on a connection of its own to the same database, for another
        thread: its transactions are its own, and DuckDB runs them beside this one's
        (new rows appended by two never conflict). `close` it when done: that closes the
        connection alone, never the database."""
        return Catalog(self.path, self.con.cursor(), self.read_only)

    def close(self) -> None:
        """Checkpoint and close. Safe to call twice."""
        _ctrlc.unwatch(self)
        try:
            self.con.close()
        except duckdb.Error:
            pass

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
        if exc[0] is None and not self.read_only and self._file is not None:
            try:
                st = os.stat(self.path)
                there = (st.st_dev, st.st_ino) == self._file
            except OSError:
                there = False
            if not there:
                raise CatalogWriteError(f"the catalog {self.path} was removed or replaced while this command wrote it: "
                                        "what it wrote went with the file that was there; run it again")

    def meta_value(self, key: str) -> str | None:
        """The `meta` table's value for `key`, or None."""
        rows = self.con.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchall()
        return rows[0][0] if rows else None

    @property
    def schema_version(self) -> int:
        return int(self.con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0])

    # -- transactions and bulk writes --------------------------------------------------

    def _end_left_over(self) -> None:
        """Roll back a transaction whose block ended without ending it. A Ctrl-C's handler
        runs at the first Python call after a statement it interrupted from another thread,
        which may be the `with` statement's own exit, before the block's rollback: the
        exception goes on, and the transaction stays, aborted, for the work kept after a
        Ctrl-C to fail on. Only for the paths that run between blocks: a block still under
        way on this connection cannot tell from one cut off so."""
        if self._txn is not None:
            self._txn = None
            with suppress(duckdb.Error):
                self.con.execute("ROLLBACK")

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """One atomic unit of work: committed on success, rolled back on any exception."""
        try:
            if self._txn is not None:
                if not _ctrlc.signalled():  # only a Ctrl-C leaves one over: this is one inside another
                    raise RuntimeError("a catalog transaction was begun inside another")
                self._end_left_over()
            self.con.execute("BEGIN TRANSACTION")
            self._txn = token = object()
            try:
                yield self.con
            except BaseException:
                if self._txn is token:  # else a later transaction rolled it back already
                    self._txn = None
                    try:
                        self.con.execute("ROLLBACK")
                    except duckdb.Error:
                        pass
                raise
            try:
                self.con.execute("COMMIT")
            except BaseException:
                with suppress(duckdb.Error):  # what a failed commit left, if anything
                    self.con.execute("ROLLBACK")
                raise
            finally:
                self._txn = None
        except (duckdb.Error, RuntimeError) as e:
            _reraise_unless_duckdb(e)
            if _ctrlc.signalled() and "transaction is aborted" in str(e):
                # A second Ctrl-C broke a statement of this transaction (the one keeping
                # finished work after the first): rolled back, it is an interruption.
                raise KeyboardInterrupt from None
            if is_corruption(e):
                raise damaged(e, self.path) from None
            if "Permission denied" in str(e):
                # The catalog's folder or its .wal not writable by this user: not a write
                # that failed part way, a catalog that cannot be opened for writing.
                raise CatalogInvalidError(
                    f"cannot write the catalog {self.path}: permission denied ({first_line(e)}); its folder and "
                    "its .wal must be writable by this user; everything committed before is kept") from None
            raise CatalogWriteError(
                f"writing the catalog {self.path} failed: {first_line(e)}; everything committed before is kept"
            ) from None

    @contextmanager
    def registered(self, name: str, data: pa.RecordBatch | pa.Table) -> Iterator[str]:
        """Expose an Arrow batch to SQL as `name` for the duration of the block."""
        try:
            self.con.register(name, data)
        except duckdb.TransactionException as e:
            if not (_ctrlc.signalled() and "transaction is aborted" in str(e) and self._txn is not None):
                raise
            # After a Ctrl-C, where the work done is being kept: a transaction cut off
            # before its rollback (see `_end_left_over`).
            self._end_left_over()
            self.con.register(name, data)
        try:
            yield name
        finally:
            try:
                self.con.unregister(name)
            except duckdb.Error:
                pass  # the connection is already broken; keep the original error


# The in-memory copies of older catalogs this process read (`_upgraded_in_memory`), by path.
_IN_MEMORY: dict[str, duckdb.DuckDBPyConnection] = {}
# The steps that drop `media` rows for the next scan to extract again (versions 19, 20,
# 22); other deletions (fingerprints and groups made wrong, marks) run in a copy too.
_DROPS_ROWS = re.compile(r"\s*DELETE\s+FROM\s+media\s", re.I)


class _NeedsUpgrade(CatalogVersionError):
    """A catalog opened read-only is at an older schema version (`head` says which)."""

    def __init__(self, head: str) -> None:
        super().__init__(f"{head} and another MediaForge process is using it; once it is done, run any command "
                         "to upgrade it")
        self.head = head


def open_catalog(path: Path | str | None = None, *, read_only: bool = False, threads: int | None = None,
                 create: bool = True) -> Catalog:
    """Open the catalog at `path` (default: `config.default_catalog_path()`); `create`:
    a writer makes the catalog's tables in a database that has none."""
    from ..config import default_catalog_path

    return Catalog.open(path if path is not None else default_catalog_path(), read_only=read_only, threads=threads,
                        create=create)
