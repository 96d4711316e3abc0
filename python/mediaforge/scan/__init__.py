"""Scanning folders into the catalog."""

from __future__ import annotations

from .engine import ScanConfig, ScanProgress, ScanSummary, scan, scan_paths

__all__ = ["ScanConfig", "ScanProgress", "ScanSummary", "scan", "scan_paths"]
