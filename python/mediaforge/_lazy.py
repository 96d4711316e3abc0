"""Lazy re-exports for package `__init__` files (PEP 562): a name is imported from its
submodule on first use, so importing a subpackage does not drag in DuckDB or pyarrow."""

from __future__ import annotations

TYPE_CHECKING = False  # typing and collections.abc are not imported at start-up
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


def lazy_exports(package: str, namespace: dict[str, Any], names: dict[str, str]) -> Callable[[str], Any]:
    """A module `__getattr__` that imports `names[attr]` (a submodule, relative to
    `package`) on first access and caches the value in `namespace`."""

    def getattr_(attr: str) -> Any:
        module = names.get(attr)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {attr!r}")
        # importlib on first use only: it imports `warnings`, and the package's `__init__`
        # runs before the console script has taken Ctrl-C (see `_entry`).
        import importlib

        mod = importlib.import_module(f".{module}", package)
        # Bind every name this submodule exports, not just `attr`: importing `.scan` sets
        # the package's `scan` attribute to the submodule, and the function of the same
        # name must win.
        for name, source in names.items():
            if source == module:
                namespace[name] = getattr(mod, name)
        return namespace[attr]

    return getattr_
