"""Media metadata, thumbnails and near-duplicate fingerprints: PyAV for containers,
mutagen for audio tags, Pillow for images and EXIF, in a pool of worker processes with
a per-file timeout.

Names are imported on first use: the worker processes import only the readers.
"""

from __future__ import annotations

from .._lazy import lazy_exports

TYPE_CHECKING = False  # typing is not imported: the CLI starts its workers from here (see spawn)

# An audio fingerprint covers the sound's first two minutes (`audio_hashes.seconds`, at
# most this: less is the whole sound, decoded).
AUDIO_FINGERPRINT_SECONDS = 120

# No recording runs a year: a length past that in a header is a broken field.
LONGEST_S = 366 * 86_400.0

if TYPE_CHECKING:
    from .engine import ExtractConfig, ExtractProgress, ExtractSummary, extract, fingerprint, make_thumbs

__getattr__ = lazy_exports(__name__, globals(), {n: "engine" for n in (
    "ExtractConfig", "ExtractProgress", "ExtractSummary", "extract", "fingerprint", "make_thumbs")})

__all__ = ["ExtractConfig", "ExtractProgress", "ExtractSummary", "extract", "fingerprint", "make_thumbs"]
