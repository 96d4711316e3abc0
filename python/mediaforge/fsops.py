"""File-system steps shared by the commands that change users' files: fresh temporary
names that never take over an existing file, and atomic replacement."""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import re
import stat
import time
from collections.abc import Callable
from typing import AnyStr, BinaryIO

from .errors import PathNotFoundError, path_text
from .stop import Stop


# `.mediaforge-<8 hex: the writer's pid><8 hex: random>.tmp`: 16 hex digits in all, the
# form a scan knows to skip; the pid tells a sweep whether its writer is still alive.
_OWN_TMP = re.compile(rb"\.mediaforge-([0-9a-f]{8})[0-9a-f]{8}\.tmp")
# A name that may hold another program's file for a moment (what a dedupe's swap took out
# of a copy's path, before it is looked at): a killed writer's is never removed while it
# is a file's only name, but given a name in sight (see `sweep_stale`).
_OWN_HOLD = re.compile(rb"\.mediaforge-hold-([0-9a-f]{8})[0-9a-f]{8}\.tmp")
_swept: set[bytes] = set()
_swept_known: set[bytes] = set()


# The range of the catalog's ns times (i64: years 1677 to 2262).
_NS_MIN, _NS_MAX = -(2**63), 2**63 - 1


def time_ns(ns: int) -> int:
    """An `os.stat` time in ns as the catalog holds it: outside what an i64 holds (a camera
    clock gone wrong), the nearest end, as the Rust core's `types::time_ns` stores it."""
    return min(max(ns, _NS_MIN), _NS_MAX)


CWD_GONE = ("the current folder no longer exists (it was deleted): cd into one that does, "
            "or give absolute paths")


def from_cwd(path: AnyStr | os.PathLike[AnyStr]) -> AnyStr:
    """A path the user gave, joined to the current folder when it is relative, not
    normalised (`link/..` is left for `realpath` to resolve as the kernel does). Every
    user path goes through here before `abspath`, `realpath` or `getcwd` would need the
    current folder: one that was deleted has no path, and is `PathNotFoundError` (exit
    3) with one line that says so, never Python's FileNotFoundError."""
    p = os.fspath(path)
    if os.path.isabs(p):
        return p
    try:
        cwd = os.getcwdb() if isinstance(p, bytes) else os.getcwd()
    except FileNotFoundError:
        raise PathNotFoundError(CWD_GONE) from None
    return os.path.join(cwd, p)  # type: ignore[arg-type]


def file_in_the_way(folder: AnyStr) -> AnyStr | None:
    """The nearest of `folder` and the folders above it that exists and is not a folder
    (a file, or a link to one), which stops `folder` from being made; None if none does."""
    at = folder
    while True:
        with contextlib.suppress(OSError):
            if not stat.S_ISDIR(os.stat(at).st_mode):
                return at
        up = os.path.dirname(at)
        if up == at:
            return None
        at = up


def link_to_nothing(folder: AnyStr) -> AnyStr | None:
    """The nearest of `folder` and the folders above it that is a symbolic link to nothing
    (a disk not mounted), which stops `folder` from being made ("File exists"); None if
    none is."""
    at = folder
    while True:
        if os.path.islink(at) and not os.path.exists(at):
            return at
        up = os.path.dirname(at)
        if up == at:
            return None
        at = up


def leads_nowhere(link: AnyStr) -> str:
    """What a link `link_to_nothing` found is, for a message: a link to a target that is
    not there (a disk not mounted?), or one that leads round in a loop."""
    target = path_text(os.fsencode(os.readlink(link)))
    try:
        os.stat(link)
    except OSError as e:
        if e.errno == errno.ELOOP:
            return f"a link to {target}, which leads round in a loop of links"
    return f"a link to {target}, which is not there (a disk not mounted?)"


def absolute(path: AnyStr | os.PathLike[AnyStr]) -> AnyStr:
    """A user's path made absolute (see `from_cwd`), its links kept, `.` and doubled
    slashes dropped, and each `..` taken as the kernel takes it: up from where the path
    has got to, which is a link's target where the name before it is a link (`album/..`,
    with `album` a link to another folder, is that folder's parent, not the folder `album`
    sits in); only that link is resolved, the others keep their names."""
    p = from_cwd(path)
    sep, up, here = (b"/", b"..", b".") if isinstance(p, bytes) else ("/", "..", ".")
    out: list = []  # the components so far, below the root
    for part in p.split(sep):  # type: ignore[arg-type]
        if not part or part == here:
            continue
        if part != up:
            out.append(part)
            continue
        if not out:
            continue  # `/..` is `/`
        at = sep + sep.join(out)
        if os.path.islink(at):
            out = [c for c in os.path.realpath(at).split(sep) if c]
        out.pop() if out else None
    return sep + sep.join(out)


def real(path: AnyStr | os.PathLike[AnyStr]) -> AnyStr:
    """`os.path.realpath` of a user's path (see `from_cwd`)."""
    return os.path.realpath(from_cwd(path))


def alive(pid: int) -> bool:
    """Whether process `pid` exists (one that cannot be signalled counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True
    return pid > 0


# A temporary is only swept once untouched this long: its writer's pid may be one this
# machine cannot see (another container, another machine on a shared folder).
STALE_AFTER_S = 600.0


def stale(path: bytes | str, pid: int, known: frozenset[int] = frozenset()) -> bool:
    """Whether a temporary its writer (`pid`) left is safe to remove: a regular file or a
    link (never a folder), untouched for `STALE_AFTER_S` (at once for a writer in `known`,
    one a journal says ran this very work on this machine), and its writer gone."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    kind_ok = stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)
    return kind_ok and (pid in known or time.time() - st.st_mtime > STALE_AFTER_S) and not alive(pid)


def sweep_stale(folder: bytes, pattern: re.Pattern[bytes] = _OWN_TMP, base: int = 16,
                known: frozenset[int] = frozenset()) -> None:
    """Remove from `folder` the temporaries a MediaForge process killed outright (kill -9,
    a power cut) left there (`stale`, `known` as there): names matching `pattern`, whose
    first group is the writer's pid (in `base`). Each folder once per process (and once
    more with writers `known`)."""
    done = _swept_known if known else _swept
    if folder in done:
        return
    done.add(folder)
    try:
        names = os.listdir(folder or b".")
    except OSError:
        return
    for name in names:
        m = pattern.fullmatch(name)
        path = os.path.join(folder, name)
        if m is not None and stale(path, int(m.group(1), base), known):
            with contextlib.suppress(OSError):
                os.unlink(path)
        held = _OWN_HOLD.fullmatch(name) if pattern is _OWN_TMP else None
        if held is not None and stale(path, int(held.group(1), 16), known):
            with contextlib.suppress(OSError):
                _recover(path)


def _recover(path: bytes) -> None:
    """A killed writer's hold name (`_OWN_HOLD`) let go of: removed where another name
    holds its file (or it is a link), else renamed to `mediaforge-recovered-<random>` in
    its folder, in sight."""
    st = os.lstat(path)
    if not stat.S_ISREG(st.st_mode) or st.st_nlink > 1:
        os.unlink(path)
        return
    for _ in range(16):
        try:
            rename_new(path, os.path.join(os.path.dirname(path), b"mediaforge-recovered-" + os.urandom(4).hex().encode()))
            return
        except FileExistsError:
            continue


def new_tmp(beside: bytes, create: Callable[[bytes], None], hold: bool = False) -> bytes:
    """Create a fresh temporary name in `beside`'s folder with `create`, which must fail
    with FileExistsError on a taken name (link, symlink, O_EXCL): a user's file is never
    overwritten or removed, and the short name fits where a 255-byte name sits. What
    killed writers left in that folder is swept first. `hold`: a name that may hold
    another program's file for a moment (`_OWN_HOLD`)."""
    folder = os.path.dirname(beside)
    sweep_stale(folder)
    head = b".mediaforge-hold-" if hold else b".mediaforge-"
    for _ in range(16):
        tmp = os.path.join(folder, head + b"%08x" % os.getpid() + os.urandom(4).hex().encode() + b".tmp")
        try:
            create(tmp)
        except FileExistsError:
            continue
        return tmp
    raise FileExistsError(errno.EEXIST, "no free temporary name", os.fsdecode(folder))


_AT_FDCWD, _RENAME_NOREPLACE, _RENAME_EXCHANGE = -100, 1, 2


@functools.cache
def _renameat2() -> Callable[..., int] | None:
    import ctypes

    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2  # glibc 2.28 and later
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


def rename_new(src: bytes | str, dst: bytes | str) -> None:
    """Rename `src` to `dst`, never over a file there: `FileExistsError` when `dst` exists,
    checked by the kernel in the rename itself (`RENAME_NOREPLACE`), so a file another
    program makes at `dst` meanwhile is never replaced. Where the kernel or the file
    system cannot (a libc without `renameat2`, some FUSE and network file systems), a
    check just before the rename, which leaves that one instant open. Other errors
    (`EXDEV` across file systems) as `os.rename` raises them."""
    import ctypes

    src, dst = os.fsencode(src), os.fsencode(dst)
    if b"\0" in src or b"\0" in dst:  # C would end the path there: another file's name
        raise ValueError("embedded null byte")
    fn = _renameat2()
    if fn is not None:
        if fn(_AT_FDCWD, src, _AT_FDCWD, dst, _RENAME_NOREPLACE) == 0:
            return
        err = ctypes.get_errno()
        # (EPERM: a seccomp filter that refuses system calls it does not know, as older
        # container runtimes had; a rename the file system refuses says so again below.)
        if err not in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EPERM):
            raise OSError(err, os.strerror(err), os.fsdecode(src), None, os.fsdecode(dst))  # EEXIST: FileExistsError
    if os.path.lexists(dst):
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), os.fsdecode(dst))
    os.rename(src, dst)


def exchange(a: bytes, b: bytes) -> bool:
    """Swap the files at two names in one step (`RENAME_EXCHANGE`): each name then leads to
    what the other did, so what a rename would have replaced is still there to look at.
    False, with nothing done, where the kernel or the file system cannot (a libc without
    `renameat2`, some FUSE and network file systems); other errors raised."""
    import ctypes

    if b"\0" in a or b"\0" in b:
        raise ValueError("embedded null byte")
    fn = _renameat2()
    if fn is None:
        return False
    if fn(_AT_FDCWD, a, _AT_FDCWD, b, _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EPERM):
        return False
    raise OSError(err, os.strerror(err), os.fsdecode(a), None, os.fsdecode(b))


def replace_all(pairs: list[tuple[bytes, bytes]]) -> None:
    """Rename each finished temporary over its target, all of them or none: a hard link
    to each target there is made first under a fresh hidden name (a reader always finds
    the target), and a rename that fails puts every target back as it was before the
    error is raised. A target that takes no link where the temporary beside it does
    (immutable, another user's in a sticky folder) would not be replaced either: it is
    the error, before anything is renamed. On a file system with no hard links at all
    (FAT), the targets are replaced one by one, as they can be. The temporaries are the
    caller's to remove on an error. (A kill -9 part way leaves some targets new, and
    the links kept of the old ones under hidden names that a later sweep removes.)"""
    kept: dict[bytes, bytes] = {}  # target -> a hidden link to its old file
    renamed: list[bytes] = []
    existed: set[bytes] = set()
    links = True

    def put_back() -> None:
        for target, old in kept.items():
            with contextlib.suppress(OSError):
                if target in renamed:
                    os.replace(old, target)
                else:  # still the old file: its hidden link goes
                    os.unlink(old)
        for target in renamed:
            if target not in existed:
                with contextlib.suppress(OSError):
                    os.unlink(target)  # there was none before

    target = b""
    try:
        for tmp, target in pairs:
            if not os.path.lexists(target) or target in kept:
                continue
            existed.add(target)
            if not links:
                continue
            try:
                kept[target] = new_tmp(target, lambda name: os.link(target, name, follow_symlinks=False))
            except FileExistsError:
                raise
            except OSError:
                if _takes_links(tmp):
                    raise
                links = False  # no hard links here: replaced one by one
        # The renames and the old files' hidden links going after them, once begun, are
        # not cut by a Ctrl-C (a few calls): one between them left the old files' links
        # behind, hidden, with the new files whole and the command saying it was stopped.
        with Stop():
            for tmp, target in pairs:
                os.replace(tmp, target)
                renamed.append(target)
            for old in kept.values():
                with contextlib.suppress(OSError):
                    os.unlink(old)
    except OSError as e:  # named by the target it failed on
        put_back()
        raise OSError(e.errno, e.strerror, os.fsdecode(target)) from e
    except BaseException:
        put_back()
        raise


def _takes_links(path: bytes) -> bool:
    """Whether a hard link to `path` (a file of ours) can be made beside it."""
    try:
        os.unlink(new_tmp(path, lambda name: os.link(path, name)))
    except OSError:
        return False
    return True


def replace_atomically(target: bytes, data: bytes) -> None:
    """Write `data` to `target` through a fresh temporary file, synced, then renamed over
    it: readers see the old bytes or the new ones, never a part. An existing target's
    permission bits are kept."""
    replace_with(target, lambda f: f.write(data))


def stand_in(fd: int, old: os.stat_result, attrs: dict[bytes, bytes]) -> None:
    """Give the new file open as `fd`, about to be renamed over a file whose stat was
    `old` and extended attributes `attrs`, that file's permission bits, ACL and other
    attributes, and its owner and group where this process may set them."""
    if (old.st_uid, old.st_gid) != (os.geteuid(), os.getegid()):
        with contextlib.suppress(OSError):  # not ours to give away: it stays ours
            os.fchown(fd, old.st_uid, old.st_gid)
    # Its ACL and other extended attributes too: with an ACL, the mode's group bits are
    # the ACL's mask, and on a file without one they would be the group's own rights
    # (widened, and the users the ACL names shut out).
    give_back(fd, None, attrs, old.st_mode)


def replace_with(target: bytes, fill: Callable[[BinaryIO], object]) -> None:
    """`replace_atomically`, with the new content written by `fill` into the open file: a
    `fill` that fails (a full disk, bad data) leaves the target as it was, and no
    temporary file. An existing target's permission bits are kept exactly (not less the
    umask), with its ACL and other extended attributes, and its owner and group where this
    process may set them (a root job keeps a user's file that user's)."""
    with Replacements() as batch:
        batch.put(target, fill)
        for _, error in batch.commit():
            if error is not None:
                raise error


class Replacements:
    """Many files replaced as `replace_with` replaces one, made durable together: `put`
    writes each target's new content into a fresh temporary file beside it; `commit` syncs
    them all at once, renames each over its target, then syncs their folders. One sync of
    many files costs the file system about one journal commit, not one each (2,000 small
    files on a disk busy with other writes: 6.9 s synced and renamed one by one, 1.1 s so;
    on an idle disk, whose syncs are quick, about the same). A target whose device,
    inode, size or mtime changed since its `put` (another program wrote it meanwhile) is
    left as it is, its new content dropped. Leaving the `with` block removes the
    temporaries not renamed (a stop, an error)."""

    def __init__(self) -> None:
        # (target, temporary, its open descriptor, the target's identity at `put`)
        self.pending: list[tuple[bytes, bytes, int, tuple[int, int, int, int] | None]] = []
        # Each pending file's real path and (device, inode): see `holds`.
        self._held: set[bytes | tuple[int, int]] = set()
        # Temporaries held open between `put` and `commit`: a caller commits at this many,
        # a quarter of the descriptors this process may open (macOS gives 256 in all).
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        self.full = 256 if soft == resource.RLIM_INFINITY else max(8, min(256, soft // 4))

    def holds(self, target: bytes) -> bool:
        """Whether a new content waits for the file at `target` (by this path or another:
        a link to its folder): commit before reading it, or putting it again."""
        if not self._held:
            return False
        st = _stat_or_none(target)
        return os.path.realpath(target) in self._held or (st is not None and (st.st_dev, st.st_ino) in self._held)

    def __enter__(self) -> Replacements:
        return self

    def __exit__(self, *_: object) -> None:
        self.discard()

    def __len__(self) -> int:
        return len(self.pending)

    def put(self, target: bytes, fill: Callable[[BinaryIO], object]) -> None:
        """Write `target`'s new content (by `fill`) into its temporary, not yet synced. A
        failure (a full disk, bad data) raises, leaving nothing behind."""
        try:
            old: os.stat_result | None = os.stat(target)
            attrs = xattrs(target)
        except FileNotFoundError:
            old, attrs = None, {}
        fds: list[int] = []
        made: list[bytes] = []
        try:
            # Made and remembered with Ctrl-C held back: one between the two would leave
            # the temporary behind.
            with Stop() as stop:
                made.append(new_tmp(target, lambda t: fds.append(os.open(t, os.O_WRONLY | os.O_CREAT | os.O_EXCL
                                                                         | os.O_CLOEXEC, 0o666))))
            if stop.requested:
                raise KeyboardInterrupt
            with open(os.dup(fds[0]), "wb") as f:
                if old is not None:
                    stand_in(f.fileno(), old, attrs)
                fill(f)
            self.pending.append((target, made[0], fds[0], _identity(old)))
            self._held.add(os.path.realpath(target))
            if old is not None:
                self._held.add((old.st_dev, old.st_ino))
        except BaseException:
            if not (self.pending and made and self.pending[-1][1] == made[0]):  # not the batch's yet
                for fd in fds:
                    with contextlib.suppress(OSError):
                        os.close(fd)
                for tmp in made:
                    with contextlib.suppress(OSError):
                        os.unlink(tmp)  # made above by this call
            raise

    def commit(self, each: Callable[[bytes, OSError | None], object] = lambda _t, _e: None
               ) -> list[tuple[bytes, OSError | None]]:
        """Sync every temporary, rename each over its target, sync their folders: each
        target put, in order, with the error that left it as it was, or None; `each` is
        told of every one as it is done. A Ctrl-C waits for the renames and their `each`
        (what is renamed is always told), then stops the caller."""
        from concurrent.futures import ThreadPoolExecutor

        def sync(fd: int) -> OSError | None:
            try:
                os.fsync(fd)
            except OSError as e:  # its blocks could not be written: a full disk, an I/O error
                return e
            return None

        # fsync waits on the disk with the GIL let go: several at once share the commits.
        fds = [fd for _, _, fd, _ in self.pending]
        if len(fds) > 1:
            with ThreadPoolExecutor(min(8, len(fds))) as pool:
                synced = list(pool.map(sync, fds))
        else:
            synced = [sync(fd) for fd in fds]
        done: list[tuple[bytes, OSError | None]] = []
        folders: dict[bytes, None] = {}
        with Stop() as stop:
            while self.pending:
                target, tmp, fd, was = self.pending.pop(0)
                error, renamed = synced[len(done)], False
                try:
                    if error is None and _identity(_stat_or_none(target)) != was:
                        error = OSError(errno.EAGAIN, "changed by another program as it was written: left "
                                        "alone; run it again", os.fsdecode(target))
                    if error is None:
                        os.replace(tmp, target)
                        renamed = True
                        folders[os.path.dirname(target)] = None
                except OSError as e:
                    error = e
                finally:
                    # (Synced already: a close that fails loses nothing, and must not keep
                    # the temporary from going.)
                    with contextlib.suppress(OSError):
                        os.close(fd)
                    if not renamed:
                        with contextlib.suppress(OSError):
                            os.unlink(tmp)
                done.append((target, error))
                each(target, error)
            self._held.clear()
            for folder in folders:  # the new names, so they survive a power cut
                with contextlib.suppress(OSError):
                    sync_folder(folder)
        if stop.requested:
            raise KeyboardInterrupt
        return done

    def discard(self) -> None:
        """Remove the temporaries not renamed."""
        self._held.clear()
        while self.pending:
            _, tmp, fd, _ = self.pending.pop()
            with contextlib.suppress(OSError):
                os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def _stat_or_none(path: bytes) -> os.stat_result | None:
    try:
        return os.stat(path)
    except FileNotFoundError:
        return None


def _identity(st: os.stat_result | None) -> tuple[int, int, int, int] | None:
    """What tells a file from the one written over it: device, inode, size, mtime."""
    return None if st is None else (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def sync_folder(folder: bytes) -> None:
    """fsync a folder, so the names made in it survive a power cut."""
    fd = os.open(folder or b".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.EROFS):  # a file system that cannot sync a folder
            raise
    finally:
        os.close(fd)


# Not carried from file to file: the label a security module gives each file by where it
# lies (set again by the system on every new file, and only the policy may change it),
# and XFS's own copy of the POSIX ACLs, which `system.posix_acl_*` carry.
_NOT_CARRIED = frozenset({"security.selinux", "security.apparmor", "security.SMACK64", "trusted.SGI_ACL_FILE",
                          "trusted.SGI_ACL_DEFAULT",
                          # A program's file capabilities, which a write drops, and the
                          # integrity records (IMA, EVM) the kernel keeps of each file's
                          # own bytes: setting them takes rights a user has not.
                          "security.capability", "security.ima", "security.evm"})


def _own(path: bytes | int) -> dict[str, bool]:
    """The keywords that keep an `os` call on `path` itself: a symlink is never followed; a
    file descriptor takes none."""
    return {} if isinstance(path, int) else {"follow_symlinks": False}


def xattrs(path: bytes | int) -> dict[bytes, bytes]:
    """A file's extended attributes (ACLs, `user.` tags such as a file manager's), never
    a symlink's target's; empty where the file system keeps none. `path` may be an open
    file's descriptor."""
    try:
        names = os.listxattr(path, **_own(path))
    except OSError as e:
        if e.errno in (errno.ENOTSUP, errno.ENOSYS):
            return {}
        raise
    got = {}
    for name in names:
        if name in _NOT_CARRIED:
            continue
        try:
            got[os.fsencode(name)] = os.getxattr(path, name, **_own(path))
        except OSError as e:
            if e.errno != errno.ENODATA:  # removed since the list was read
                raise
    return got


def may_give(owner: tuple[int, int]) -> bool:
    """Whether this process may give a file it makes this owner (user, group)."""
    uid, gid = owner
    if uid == os.geteuid() and (gid == os.getegid() or gid in os.getgroups()):
        return True
    return has_capability(CAP_CHOWN)


CAP_CHOWN, CAP_FOWNER = 0, 3


def has_capability(bit: int) -> bool:
    """Whether this process holds the capability `bit` in its effective set (root has
    them all, unless dropped); where /proc cannot tell, whether it is root."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) >> bit & 1)
    except (OSError, ValueError, IndexError):
        pass
    return os.geteuid() == 0


def give_back(path: bytes | int, owner: tuple[int, int] | None, attrs: dict[bytes, bytes] | None,
              mode: int) -> None:
    """Give the new file at `path` (made by this process, never a user's file; better its
    open descriptor, which no one can swap for a link meanwhile) the owner, extended
    attributes and permission bits a file it stands in for had; with `attrs`, no others
    (the default ACL of its folder gives a new file one: it could widen who may read it).
    A PermissionError saying what when this process may not."""
    if owner is not None:
        st = os.fstat(path) if isinstance(path, int) else os.lstat(path)
        if (st.st_uid, st.st_gid) != owner:
            try:
                os.chown(path, *owner, **_own(path))
            except PermissionError as e:
                raise PermissionError(errno.EPERM, f"cannot give it its owner {owner[0]}:{owner[1]} back: "
                                      f"{e.strerror} (only root gives a file away)") from None
    if attrs is not None:
        for name in xattrs(path).keys() - attrs.keys():
            try:
                os.removexattr(path, name, **_own(path))
            except OSError as e:
                raise PermissionError(e.errno, f"cannot remove the extended attribute {os.fsdecode(name)} its "
                                      f"folder gave it: {e.strerror}") from None
    for name, value in (attrs or {}).items():
        try:
            os.setxattr(path, name, value, **_own(path))
        except OSError as e:
            raise PermissionError(e.errno, f"cannot give it its extended attribute {os.fsdecode(name)} back: "
                                  f"{e.strerror}") from None
    os.chmod(path, stat.S_IMODE(mode))  # after the owner and the ACLs: a chown clears set-id bits
