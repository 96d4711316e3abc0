"""MediaForge: catalog, analyse and deduplicate huge personal media libraries.

The public entry points are `open_catalog`, `scan` and the `Catalog` class; the Rust
engine in `mediaforge._core` is private. They are imported on first use, so a process
that needs only part of the package (an extraction worker) does not load DuckDB.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # typing is not imported: this module is on every start-up's path

# The Rust extension allocates through mimalloc, which by default asks the kernel for
# transparent huge pages. The first touch of each 2 MiB page is then zeroed whole, and on
# virtual machines that first touch is slow: a 1M-file scan spent about a sixth of its CPU
# time in the kernel's page clearing. Set before the extension loads (mimalloc reads its
# options then); a value the user exported wins.
os.environ.setdefault("MIMALLOC_ALLOW_THP", "0")

from ._lazy import lazy_exports

__version__ = "0.1.0"

_LAZY = {
    "Catalog": "catalog", "open_catalog": "catalog", "MediaForgeError": "errors",
    "ScanConfig": "scan", "ScanProgress": "scan", "ScanSummary": "scan", "scan": "scan",
}

if TYPE_CHECKING:
    from .catalog import Catalog, open_catalog
    from .errors import MediaForgeError
    from .scan import ScanConfig, ScanProgress, ScanSummary, scan


__getattr__ = lazy_exports(__name__, globals(), _LAZY)

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
