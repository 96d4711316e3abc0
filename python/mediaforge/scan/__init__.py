"""Scanning folders into the catalog."""

from __future__ import annotations

from .engine import ScanConfig, ScanProgress, ScanSummary, scan

__all__ = ["ScanConfig", "ScanProgress", "ScanSummary", "scan"]
