"""Free space on the thumbnails' disk: the floor thumbnails leave (MEDIAFORGE_MIN_FREE,
read in `config.min_free_bytes`), checked before each one is written. Standard library
only: a scan that writes no thumbnail loads no Pillow for it."""

from __future__ import annotations

import os


def space_short(root: os.PathLike[str] | str, min_free: int) -> str | None:
    """Why no thumbnail may be written under `root` now, as "N free on the disk of ROOT,
    under the M kept free (...)": its disk has under `min_free` bytes free for this user
    (None: it has enough, or `min_free` is 0). The folder may not exist yet: then the
    nearest one above it that does is asked."""
    if min_free <= 0:
        return None
    free = free_bytes(root)
    if free is None or free >= min_free:
        return None
    return (f"{binary_size(free)} free on the disk of {os.fspath(root)}, "
            f"under the {binary_size(min_free)} kept free (MEDIAFORGE_MIN_FREE)")


def free_bytes(root: os.PathLike[str] | str) -> int | None:
    """Bytes free for this user on the disk of `root`, or of the nearest folder above it
    that exists; None where it cannot be asked (the write itself says what is wrong)."""
    folder = os.fspath(root)
    while True:
        try:
            st = os.statvfs(folder)
            break
        except FileNotFoundError:
            up = os.path.dirname(folder)
            if up == folder:
                return None
            folder = up
        except OSError:
            return None
    return st.f_bavail * st.f_frsize


def binary_size(n: int) -> str:
    """`1,023.4 KiB`, `1.5 GiB`: a size in the binary units MEDIAFORGE_MIN_FREE is given
    in, the largest that keeps it at 1 or more, to a tenth (bytes: whole)."""
    if n < 1024:
        return f"{n} B"
    size = float(n)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        size /= 1024
        if size < 1024 or unit == "TiB":
            break
    return f"{size:,.1f} {unit}"
