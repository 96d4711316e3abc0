"""The DuckDB catalog: schema, safe opening, bulk writes, queries and export."""

from __future__ import annotations

from .query import export_parquet, file_info, run_query, stats
from .schema import SCHEMA_VERSION
from .store import Catalog, open_catalog

__all__ = ["SCHEMA_VERSION", "Catalog", "export_parquet", "file_info", "open_catalog", "run_query", "stats"]
