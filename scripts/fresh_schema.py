"""Write python/mediaforge/catalog/fresh.py: the latest schema as the statements that make
a new catalog in one go. Run it after adding a migration (tests/test_fresh_schema.py
fails until it is run)."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "python"))

from mediaforge.catalog.schema import render_fresh  # noqa: E402

target = REPO / "python" / "mediaforge" / "catalog" / "fresh.py"
target.write_text(render_fresh())
print(f"wrote {target.relative_to(REPO)}")
