"""The `dreamlock` command: a thin layer that parses flags, builds a config, calls the API.

Each command lives in its own module under ``dreamlock.cli`` and registers itself on ``app``.
"""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="dreamlock",
    help="Lock a subject into a text-to-image diffusion model from a few photos, and measure the likeness.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# One module per command; each registers its command on `app` when imported.
COMMAND_MODULES = ["prepare", "caption", "train", "generate", "edit", "evaluate", "export", "demo"]


def _register_commands() -> None:
    for name in COMMAND_MODULES:
        try:
            importlib.import_module(f"dreamlock.cli.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"dreamlock.cli.{name}":
                raise


_register_commands()


def main() -> None:
    app()
