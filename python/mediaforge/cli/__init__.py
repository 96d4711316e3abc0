"""The `mediaforge` command. Thin: options, a frozen config, one library call, output.

Errors from the library become one line on stderr and a documented exit code
(`mediaforge.errors.ExitCode`); set MEDIAFORGE_DEBUG=1 to see the traceback instead.
"""

from __future__ import annotations

import os
import sys

import typer

from ..catalog.store import is_corruption, is_interrupt
from ..errors import ExitCode, MediaForgeError, first_line


def main(argv: list[str] | None = None) -> None:
    """Console entry point."""
    from .app import app

    debug = bool(os.environ.get("MEDIAFORGE_DEBUG"))
    try:
        rv = app(args=argv, prog_name="mediaforge", standalone_mode=False)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except typer.Abort:
        _fail(INTERRUPTED, ExitCode.INTERRUPTED)
    except typer.TyperException as e:
        # Usage errors (unknown option, bad value): one line, with a pointer to --help.
        fmt = getattr(e, "format_message", None)
        text = fmt() if callable(fmt) else str(e)
        _fail(f"{text} (see mediaforge --help)", ExitCode.USAGE)
    except MediaForgeError as e:
        if debug:
            raise
        _fail(str(e), e.exit_code)
    except KeyboardInterrupt:
        _fail(INTERRUPTED, ExitCode.INTERRUPTED)
    except BrokenPipeError:
        # `mediaforge query ... | head`: the reader left; not an error worth a message.
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115
        sys.exit(ExitCode.OK)
    except Exception as e:  # noqa: BLE001 - the last line of defence: one line, not a traceback
        if is_interrupt(e):
            _fail(INTERRUPTED, ExitCode.INTERRUPTED)
        if is_corruption(e):
            _fail(f"the catalog file is damaged ({first_line(e)}); restore it from a backup, "
                  f"or move it aside and scan again", ExitCode.CATALOG_INVALID)
        if debug:
            raise
        _fail(f"internal error: {type(e).__name__}: {e} (set MEDIAFORGE_DEBUG=1 for details)", ExitCode.INTERNAL)
    sys.exit(rv if isinstance(rv, int) else ExitCode.OK)


INTERRUPTED = "interrupted: work already committed to the catalog is kept; run the command again to finish"


def _fail(message: str, code: int) -> None:
    print(f"mediaforge: error: {first_line(message)}", file=sys.stderr)
    sys.exit(code)
