"""pyarrow loaded without numpy, for the command line's own process.

pyarrow's two big modules (`pyarrow.lib`, and `pyarrow._compute` behind
`pyarrow.compute`) import numpy whenever it is installed, and it always is (the metadata
workers use it). That import alone is 0.05-0.1 s of CPU on every command, taken from a
scan's walk on the same cores. The command line never hands numpy arrays to Arrow or asks
Arrow for them, so its process loads those two modules as if numpy were absent, which
pyarrow supports from version 18 (the project's floor; 17 and older fail to load): it
imports numpy optionally and only its numpy conversions refuse to run. numpy itself stays
importable for any other module that wants it.

Library users are unaffected: nothing here runs unless the command line calls `install()`,
and a pyarrow that is already loaded stays as it is.
"""

from __future__ import annotations

import sys
from importlib.machinery import ModuleSpec, PathFinder
from types import ModuleType

_MODULES = frozenset({"pyarrow.lib", "pyarrow._compute"})


class _WithoutNumpy:
    """A finder that lets the normal one find `_MODULES` and runs their start-up with
    numpy hidden, unless numpy is already loaded (then there is nothing to save)."""

    @staticmethod
    def find_spec(name: str, path: object = None, target: object = None) -> ModuleSpec | None:
        if name not in _MODULES:
            return None
        spec = PathFinder.find_spec(name, path)  # type: ignore[arg-type]
        loader = spec.loader if spec is not None else None
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        run = loader.exec_module

        def exec_module(module: ModuleType) -> None:
            if "numpy" in sys.modules:
                run(module)
                return
            sys.modules["numpy"] = None  # type: ignore[assignment] - "not installed", to import
            try:
                run(module)
            finally:
                if "numpy" in sys.modules and sys.modules["numpy"] is None:
                    del sys.modules["numpy"]

        loader.exec_module = exec_module  # type: ignore[method-assign] - this spec's loader only
        return spec


def install() -> None:
    """Load pyarrow without numpy in this process from now on (idempotent)."""
    if not any(isinstance(f, _WithoutNumpy) for f in sys.meta_path):
        sys.meta_path.insert(0, _WithoutNumpy())
