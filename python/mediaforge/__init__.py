"""MediaForge: catalog, analyse and deduplicate huge personal media libraries.

The public entry points are `open_catalog`, `scan` and the `Catalog` class; the Rust
engine in `mediaforge._core` is private.
"""

from __future__ import annotations

from .catalog import Catalog, open_catalog
from .errors import MediaForgeError
from .scan import ScanConfig, ScanProgress, ScanSummary, scan

__version__ = "0.1.0"

__all__ = [
    "Catalog",
    "MediaForgeError",
    "ScanConfig",
    "ScanProgress",
    "ScanSummary",
    "__version__",
    "open_catalog",
    "scan",
]
