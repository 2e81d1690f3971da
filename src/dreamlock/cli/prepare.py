"""``dreamlock prepare SRC OUT``: flags -> PrepareConfig -> ``dreamlock.data.prepare.prepare``."""

from __future__ import annotations

from pathlib import Path

import typer

from dreamlock.cli import app
from dreamlock.cli.common import console, run_api
from dreamlock.errors import UserError, WorkError


@app.command()
def prepare(
    src: Path = typer.Argument(..., help="Folder with your photos (only read, never modified)."),
    out: Path = typer.Argument(..., help="Output folder for the PNGs and prepare_report.json (not inside SRC)."),
    size: str = typer.Option("512", "--size", help="Output size: 512 (square) or WIDTHxHEIGHT, e.g. 768x512."),
    crop: str = typer.Option(
        "center",
        "--crop",
        metavar="[center|face|pad]",
        help="center crop, crop around the largest face, or pad (letterbox, nothing lost).",
    ),
    bucket: bool = typer.Option(
        False,
        "--bucket",
        help="Resize each image to the nearest aspect-ratio bucket (about size² pixels, multiples of 64) instead of the exact size.",
    ),
    background: str = typer.Option(
        "white", "--background", metavar="[white|black]", help="Colour for transparent areas and padding."
    ),
    min_size: int = typer.Option(
        256, "--min-size", help="Images whose short side is below this are 'small' (see --small)."
    ),
    small: str = typer.Option(
        "skip",
        "--small",
        metavar="[skip|upscale]",
        help="What to do with small images: skip them, or upscale them with a warning.",
    ),
    recursive: bool = typer.Option(False, "--recursive/--no-recursive", help="Also read photos in subfolders of SRC."),
) -> None:
    """Crop/resize every photo in SRC to the same size, write PNGs and a report into OUT."""

    def call() -> None:
        from rich.markup import escape

        from dreamlock.data.prepare import prepare as run_prepare
        from dreamlock.data.prepare import summary_table

        report = run_prepare(
            src,
            out,
            progress=True,
            size=size,
            crop=crop,
            bucket=bucket,
            background=background,
            min_size=min_size,
            small=small,
            recursive=recursive,
        )
        console.print(summary_table(report))
        for e in report.entries:
            for note in e.notes:
                if note.startswith("upscaled from"):
                    console.print(f"[yellow]warning:[/] {escape(e.file)}: {escape(note)}", highlight=False)
        if report.other_outputs:
            console.print(
                f"[yellow]warning:[/] {escape(report.out)} also holds {len(report.other_outputs)} PNG(s) this run did not "
                f"write (e.g. {escape(report.other_outputs[0])}); remove them or use an empty OUT so they are not trained on",
                highlight=False,
            )
        console.print(
            f"wrote {report.ok_count} image(s) to {escape(report.out)} (report: {escape(str(report.report_path))})",
            highlight=False,
        )
        if report.failed_count:
            raise WorkError(
                f"{report.failed_count} of {len(report.entries)} file(s) failed; see {report.report_path} for the reasons"
            )
        if report.ok_count == 0 and report.entries:
            first = next((e for e in report.entries if e.reason), report.entries[0])
            raise UserError(f"{src}: no image was kept, so there is nothing to train on ({first.file}: "
                            f"{first.reason or first.status})")

    run_api(call)
