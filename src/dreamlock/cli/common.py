"""What every command shares: error mapping to exit codes, the console."""

from __future__ import annotations

import os
import sys
from typing import Callable, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from dreamlock.errors import DreamlockError

T = TypeVar("T")

console = Console(stderr=True)


def run_api(fn: Callable[[], T]) -> T:
    """Call an API function; turn errors into one line on stderr and an exit code.

    Exit codes: 0 ok, 1 the work failed, 2 the user's input is wrong, 130 interrupted.
    Unexpected exceptions print one line too; ``DREAMLOCK_DEBUG=1`` shows the traceback.
    """
    try:
        return fn()
    except DreamlockError as e:
        console.print(f"[bold red]error:[/] {escape(e.message)}", highlight=False, soft_wrap=True)
        raise typer.Exit(e.exit_code) from None
    except KeyboardInterrupt:
        console.print("[bold red]interrupted[/]")
        raise typer.Exit(130) from None
    except Exception as e:  # noqa: BLE001 - the last line of defence before the user
        if os.environ.get("DREAMLOCK_DEBUG"):
            raise
        console.print(
            f"[bold red]error:[/] internal error: {type(e).__name__}: {escape(str(e))} "
            "(rerun with DREAMLOCK_DEBUG=1 for the traceback and report it)",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(1) from None


def fail(message: str, code: int = 2) -> None:
    """Print one error line and exit."""
    console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    sys.stderr.flush()
    raise typer.Exit(code)


def checkpoint(run, step: int | None):
    """``--checkpoint STEP``: the run-like folder of that checkpoint; None: the run itself (final/)."""
    if step is None:
        return run
    from dreamlock.training.materialize import checkpoint_as_run

    return checkpoint_as_run(run, step)
