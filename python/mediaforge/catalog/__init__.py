"""The DuckDB catalog: schema, safe opening, bulk writes, queries and export.

Names are imported on first use, so importing this package does not load DuckDB.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from .query import export_parquet, file_info, run_query, stats
    from .schema import SCHEMA_VERSION
    from .store import Catalog, open_catalog

__getattr__ = lazy_exports(__name__, globals(), {
    "export_parquet": "query", "file_info": "query", "run_query": "query", "stats": "query",
    "SCHEMA_VERSION": "schema", "Catalog": "store", "open_catalog": "store"})

__all__ = ["SCHEMA_VERSION", "Catalog", "export_parquet", "file_info", "open_catalog", "run_query", "stats"]
