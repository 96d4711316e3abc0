"""File-system steps shared by the commands that change users' files: fresh temporary
names that never take over an existing file, and atomic replacement."""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Callable
from typing import BinaryIO


def new_tmp(beside: bytes, create: Callable[[bytes], None]) -> bytes:
    """Create a fresh temporary name in `beside`'s folder with `create`, which must fail
    with FileExistsError on a taken name (link, symlink, O_EXCL): a user's file is never
    overwritten or removed, and the short name fits where a 255-byte name sits."""
    folder = os.path.dirname(beside)
    for _ in range(16):
        tmp = os.path.join(folder, b".mediaforge-" + secrets.token_hex(8).encode() + b".tmp")
        try:
            create(tmp)
        except FileExistsError:
            continue
        return tmp
    raise FileExistsError(errno.EEXIST, "no free temporary name", os.fsdecode(folder))


def replace_atomically(target: bytes, data: bytes) -> None:
    """Write `data` to `target` through a fresh temporary file, synced, then renamed over
    it: readers see the old bytes or the new ones, never a part. An existing target's
    permission bits are kept."""
    replace_with(target, lambda f: f.write(data))


def replace_with(target: bytes, fill: Callable[[BinaryIO], object]) -> None:
    """`replace_atomically`, with the new content written by `fill` into the open file: a
    `fill` that fails (a full disk, bad data) leaves the target as it was, and no
    temporary file. An existing target's permission bits are kept exactly (not less the
    umask), and its owner and group where this process may set them (a root job keeps a
    user's file that user's)."""
    try:
        old: os.stat_result | None = os.stat(target)
    except FileNotFoundError:
        old = None
    fds: list[int] = []
    tmp = new_tmp(target, lambda t: fds.append(os.open(t, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)))
    try:
        with open(fds[0], "wb") as f:
            if old is not None:
                if (old.st_uid, old.st_gid) != (os.geteuid(), os.getegid()):
                    with contextlib.suppress(OSError):  # not ours to give away: it stays ours
                        os.fchown(f.fileno(), old.st_uid, old.st_gid)
                os.fchmod(f.fileno(), stat.S_IMODE(old.st_mode))  # after: a chown clears set-id bits
            fill(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)  # made above by this call
        raise
