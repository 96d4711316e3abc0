"""Where things live and how many threads to use, from options and the environment."""

from __future__ import annotations

import contextlib
import decimal
import os
import re
import stat
from pathlib import Path

from .errors import InvalidInputError

CATALOG_ENV = "MEDIAFORGE_CATALOG"
THREADS_ENV = "MEDIAFORGE_THREADS"
MIN_FREE_ENV = "MEDIAFORGE_MIN_FREE"
# Space thumbnails leave free on their disk: the catalog's own writes (a checkpoint
# copies changed blocks before it frees the old ones) and everything else on that disk
# need room after a big thumbnail run.
DEFAULT_MIN_FREE = 1 << 30
WORKER_MEMORY_ENV = "MEDIAFORGE_WORKER_MEMORY"
# Address space per extraction worker: generous for 100-megapixel photos and 8K video,
# small enough that a hostile file ends in MemoryError in its worker rather than swapping
# the machine. A worker needs about 140 MiB to start; below the floor none would.
DEFAULT_WORKER_MEMORY = 8 << 30
MIN_WORKER_MEMORY = 512 << 20  # a worker with its decoders loaded takes about 250 MiB; a video decode, more
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def default_catalog_path() -> Path:
    """`$MEDIAFORGE_CATALOG`, else `$XDG_DATA_HOME/mediaforge/catalog.duckdb` (an
    absolute one), else `~/.local/share/mediaforge/catalog.duckdb`."""
    env = os.environ.get(CATALOG_ENV)
    if env:
        return catalog_path(env)
    # A relative XDG_DATA_HOME is not valid (the XDG spec: it is ignored): it would put a
    # catalog in whatever folder each command is run from.
    data = expand_home(os.environ.get("XDG_DATA_HOME", ""))  # a `~` as a shell would not expand it
    if not os.path.isabs(data):
        data = str(Path(_home()) / ".local" / "share")
    return catalog_path(Path(data) / "mediaforge" / "catalog.duckdb")


def expand_home(path: str) -> str:
    """`path` with a leading `~` (alone, or before a `/`) made the home folder (`_home`);
    `~user` as the password database has it."""
    if path == "~" or path.startswith("~/"):
        return _home() + path[1:]
    return os.path.expanduser(path)


def _home() -> str:
    """The home folder: `$HOME`, or the user's entry in the password database where it is
    unset or empty (`HOME=` made `~` the root folder, and the catalog `/.local/...`)."""
    home = os.environ.get("HOME", "")
    if os.path.isabs(home):
        return home
    import pwd

    try:
        return pwd.getpwuid(os.getuid()).pw_dir or "/"
    except KeyError:  # a user the database does not know (a container's random uid)
        return "/"


def catalog_path(given: os.PathLike[str] | str) -> Path:
    """A catalog path as every part of MediaForge takes it: a leading `~` is the home
    folder (as DuckDB, which opens it, reads one; a folder named `~` is `./~`), and the
    path is made absolute, so the catalog, its index and its thumbnails are found in one
    place whatever the working folder."""
    from .fsops import from_cwd

    text = os.fspath(given)
    if text.endswith(("/", "/.", "/..")) or text in (".", ".."):
        # `Path` would drop the slash: `cat.duckdb/` names a folder, and a typo for another.
        from .errors import path_text

        raise InvalidInputError(f"the catalog {path_text(os.fsencode(text))} names a folder (it ends with "
                                f"{'/' if text.endswith('/') else repr(text.rsplit('/', 1)[-1])}): a catalog is a file")
    return Path(from_cwd(expand_home(text)))


# Thumbnails' long side in px where neither the command nor the catalog says otherwise.
DEFAULT_THUMB_SIZE = 256


def thumbs_dir(catalog: os.PathLike[str] | str) -> Path:
    """The thumbnail folder of a catalog: `thumbs/` beside the catalog file (a link's
    target's; a link that loops is left as it is: opening the catalog says so)."""
    return Path(os.path.realpath(catalog)).parent / "thumbs"


# What `meta.thumbs.tmp_name` makes (the pid in decimal): for `fsops.sweep_stale` to find
# the temporaries of workers killed outright.
THUMB_TMP_PATTERN = re.compile(rb"\.[0-9a-f]{64}\.webp\.([0-9]+)\.tmp")


def sweep_thumb_temporaries(root: Path) -> None:
    """Remove from every shard of the thumbnail folder `root` the temporaries that workers
    killed outright (kill -9, a power cut) left, once untouched for `fsops.STALE_AFTER_S`:
    a shard the killed run wrote no thumbnail into again would keep them for good."""
    from .fsops import sweep_stale

    try:
        sizes = [e.path for e in os.scandir(root) if e.is_dir(follow_symlinks=False) and e.name.isdigit()]
    except OSError:
        return
    for size in sizes:
        try:
            shards = [e.path for e in os.scandir(size) if e.is_dir(follow_symlinks=False) and len(e.name) == 2]
        except OSError:
            continue
        for shard in shards:
            sweep_stale(os.fsencode(shard), THUMB_TMP_PATTERN, 10)


def thumb_whole(path: os.PathLike[str] | str, length: int | None = None) -> bool:
    """Whether a thumbnail file is there and whole: a regular file of the `length` the
    catalog recorded when it was written (one stat: a zero-byte file, or one cut short by
    a copy or a sync, is not); where none was recorded (before schema 14), a WebP whose
    RIFF header gives the file's length (its header only, not a decode)."""
    if length is not None:
        try:
            st = os.stat(path)
        except OSError:
            return False
        return stat.S_ISREG(st.st_mode) and st.st_size == length
    try:  # not blocking on a FIFO put there
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        st = os.fstat(fd)
        head = os.read(fd, 12) if stat.S_ISREG(st.st_mode) else b""
    except OSError:
        return False
    finally:
        os.close(fd)
    length = st.st_size
    return (len(head) == 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP"
            and int.from_bytes(head[4:8], "little") + 8 == length)


def search_dir(catalog: os.PathLike[str] | str) -> Path:
    """Where the search index of a catalog lives: beside it, named after the catalog file
    itself (links resolved: one catalog, reached by any name, has one): `<stem>.search/`
    for `<stem>.duckdb`, else `<name>.search-index/`. Two catalogs in one folder never
    share one (`x.duckdb` and `x.db` did: each rebuilt it for itself, a QA finding)."""
    p = Path(os.path.realpath(catalog))
    return p.with_name(p.stem + ".search") if p.suffix == ".duckdb" else p.with_name(p.name + ".search-index")


def old_search_dir(catalog: os.PathLike[str] | str) -> Path | None:
    """Where an older version kept the index of a catalog not named `.duckdb` (`<stem>.search`,
    taken over by `search.refresh` where it holds this catalog's index); None for others."""
    p = Path(os.path.realpath(catalog))
    return None if p.suffix == ".duckdb" else p.with_name(p.stem + ".search")


# Beside the catalog, `dedupe --apply` writes its journals here and `--action trash`
# moves files here.
JOURNAL_DIR = "journal"
TRASH_DIR = "trash"


def catalog_files(catalog: os.PathLike[str] | str | bytes) -> list[bytes]:
    """The catalog file, its write-ahead log, thumbnail folder and search index, as real
    absolute paths: what a scan of the folder holding them leaves out. So are dedupe's
    journal and trash folders beside it, once the journal folder holds a dedupe journal
    (a folder of the user's that happens to be named so is scanned): the files trashed
    are duplicates put aside, not files found anew."""
    path = Path(os.fsdecode(catalog))
    real = Path(os.path.realpath(path))
    out = [real, real.with_name(real.name + ".wal"), thumbs_dir(real), search_dir(real)]
    old = old_search_dir(real)
    with contextlib.suppress(OSError):  # (a name too long for the system: no such folder either)
        if old is not None and (old / "catalog-id").is_file():
            # An index an older version kept there (this catalog's, until a search or scan
            # takes it over; else another catalog's of this stem): no files of the library.
            out.append(old)
    journal = real.parent / JOURNAL_DIR
    try:
        ours = journal.is_dir() and any(journal.glob("dedupe-*.jsonl"))
    except OSError:
        ours = False
    if ours:
        out += [journal, real.parent / TRASH_DIR]
    return [os.fsencode(p) for p in out]


def catalog_file_ids(paths: list[bytes]) -> list[tuple[int, int]]:
    """(device, inode) of each of `paths` (`catalog_files`) that exists: the walk leaves
    them out under any other name too (a hard link to the catalog in the tree, a bind
    mount, a link followed with `-L`)."""
    ids = []
    for p in paths:
        try:
            st = os.stat(p)
        except OSError:
            continue
        ids.append((st.st_dev, st.st_ino))
    return ids


MAX_THREADS = 1024  # threads, or worker processes for extraction: more is a typo, not a machine


def check_thumb_size(size: int | None) -> int | None:
    """A thumbnail's long side: 16 to 2048 px (None: the catalog's usual one)."""
    if size is not None and not 16 <= size <= 2048:
        raise InvalidInputError(f"thumbnail size must be 16 to 2048 px, got {size}")
    return size


def check_timeout(seconds: float) -> float:
    """A per-file extraction timeout: a positive, finite number of seconds."""
    if not 0 < seconds < float("inf"):  # NaN fails this too
        raise InvalidInputError(f"timeout must be a positive number of seconds, got {seconds}")
    return seconds


def worker_count(option: int | None) -> int:
    """Worker processes for extraction: `thread_count`, but at most four per core (more
    only wait for the CPU; I/O-bound reads off a slow disk are served by four) and one per
    256 MiB of available memory (a worker decoding a 50-megapixel photo or a 4K frame
    holds about that): `-j 1024` would otherwise start a thousand interpreters."""
    wanted = thread_count(option)
    return max(1, min(wanted, 4 * cores(), _available_memory() // (256 << 20)))


def cores() -> int:
    """The CPUs this process may use: its affinity (`taskset`, a container's cpuset), and
    a container's CPU quota (cgroup v2 `cpu.max`, as `docker --cpus` sets), not the
    machine's count; as the Rust core counts them (`available_parallelism`)."""
    try:
        n = len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    return min(n, quota_cores())


def quota_cores(cpu_max: str = "/sys/fs/cgroup/cpu.max") -> int:
    """The whole CPUs a cgroup v2 quota allows (`150000 100000`: 2), rounded up; a very
    large number where there is no quota (`max`), or no such file."""
    try:
        with open(cpu_max, "rb") as f:
            quota, period = f.read().split()[:2]
        if quota != b"max" and int(period) > 0:
            return max(1, -(-int(quota) // int(period)))
    except (OSError, ValueError):
        pass
    return 1 << 30


def _available_memory() -> int:
    """Bytes of memory available to new work (MemAvailable), or a large number when
    the system does not say."""
    try:
        with open("/proc/meminfo", "rb") as f:
            for line in f:
                if line.startswith(b"MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 1 << 62


def thread_count(option: int | None) -> int:
    """Threads for parallel work: the option, else `$MEDIAFORGE_THREADS`, else all cores."""
    if option is not None:
        value = option
    elif os.environ.get(THREADS_ENV):
        raw = os.environ[THREADS_ENV]
        try:
            value = int(raw)
        except ValueError:
            raise InvalidInputError(f"{THREADS_ENV}={raw!r} is not a whole number") from None
    else:
        return cores()
    if not 1 <= value <= MAX_THREADS:
        raise InvalidInputError(f"thread count must be 1 to {MAX_THREADS}, got {value}")
    return value


def min_free_bytes() -> int:
    """Bytes thumbnails leave free on the disk they are written to: `$MEDIAFORGE_MIN_FREE`
    (bytes, or a number with K, M, G or T for binary multiples: `500M`, `2G`, `1.5GiB`;
    0 turns the check off), else 1 GiB. Capped at 2**62 (more than any disk)."""
    # A number too big for any disk holds every thumbnail back, as a smaller one past the
    # disk's size does.
    return min(_size_env(MIN_FREE_ENV, DEFAULT_MIN_FREE), 1 << 62)


def worker_memory() -> int:
    """The address space each extraction worker may use, in bytes: `$MEDIAFORGE_WORKER_MEMORY`
    (a size, as `MEDIAFORGE_MIN_FREE` takes one: `2G`, `512M`; 0: no limit), else 8 GiB.
    Checked here, in the parent, so that a bad value is a usage error, not workers that
    die as they start."""
    value = _size_env(WORKER_MEMORY_ENV, DEFAULT_WORKER_MEMORY)
    if 0 < value < MIN_WORKER_MEMORY:
        raise InvalidInputError(f"{WORKER_MEMORY_ENV}={os.environ[WORKER_MEMORY_ENV].strip()!r} is too little for "
                                f"a worker to start: give at least {MIN_WORKER_MEMORY >> 20}M, or 0 for no limit")
    return min(value, 1 << 62)  # more than any machine has, and what setrlimit takes


def _size_env(name: str, default: int) -> int:
    """A size in bytes from the environment variable `name`: bytes, or a number with K, M,
    G or T for binary multiples (`500M`, `2G`, `1.5GiB`); `default` when unset or empty."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    m = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)\s*([KMGT]?)(?:i?B)?", raw, re.IGNORECASE)
    if m is None:
        raise InvalidInputError(f"{name}={raw!r} is not a size: write bytes, or a number with K, M, G or T "
                                "(500M, 2G)")
    # A fraction of a byte rounds up (0.4 must not turn a check off).
    value = decimal.Decimal(m.group(1)) * _UNITS[m.group(2).upper()]
    return int(value.to_integral_value(decimal.ROUND_CEILING))
