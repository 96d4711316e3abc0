"""Organise and find: tags and collections on the stable `media_id`, smart collections
as checked SQL predicates over the `library` view, XMP sidecar import and export, and the
full-text search index (tantivy, in the Rust core)."""

from __future__ import annotations

from .._lazy import lazy_exports

__getattr__ = lazy_exports(__name__, globals(), {
    "check_predicate": "predicate",
    "normalize_tag": "tags",
    "resolve_targets": "targets",
})
