"""``dreamlock caption DIR``: flags -> ``dreamlock.data.caption.caption``."""

from __future__ import annotations

from pathlib import Path

import typer

from dreamlock.cli import app
from dreamlock.cli.common import console, run_api
from dreamlock.errors import WorkError

CAPTIONER_CHOICES = "[template|toy|blip|florence2|wd14]"


@app.command()
def caption(
    dir: Path = typer.Argument(..., help="Folder of images (e.g. the OUT of `dreamlock prepare`)."),
    trigger: str = typer.Option(None, "--trigger", help="Rare identifier for your subject, e.g. sks."),
    class_word: str = typer.Option(None, "--class-word", help="What the subject is, e.g. dog."),
    captioner: str = typer.Option(
        "template",
        "--captioner",
        metavar=CAPTIONER_CHOICES,
        help="template: the same text for every image; toy: the toy world's oracle; blip / florence2 / wd14: a captioning model (--model).",
    ),
    model: str = typer.Option(
        None,
        "--model",
        help="Model for blip/florence2 (local folder or Hub id) or wd14 (folder with model.onnx + selected_tags.csv).",
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing .txt sidecars (kept by default)."),
    prefix: str = typer.Option("", "--prefix", help="Text put before every caption (joined with ', ')."),
    suffix: str = typer.Option("", "--suffix", help="Text put after every caption (joined with ', ')."),
    template: str = typer.Option(
        None, "--template", help="Template for --captioner template (default: a photo of {trigger} {class_word})."
    ),
) -> None:
    """Write a <image>.txt caption next to every image in DIR, with the trigger word inserted."""

    def call() -> None:
        from rich.markup import escape

        from dreamlock.data.caption import caption as run_caption
        from dreamlock.data.caption import summary_table
        from dreamlock.data.caption.template import DEFAULT_TEMPLATE

        report = run_caption(
            dir,
            trigger=trigger,
            class_word=class_word,
            captioner=captioner,
            model=model,
            overwrite=overwrite,
            prefix=prefix,
            suffix=suffix,
            template=template or DEFAULT_TEMPLATE,
            progress=True,
        )
        console.print(summary_table(report))
        console.print(f"{report.written_count} sidecar(s) written in {escape(report.dir)}", highlight=False)
        if report.failed_count:
            raise WorkError(
                f"{report.failed_count} of {len(report.entries)} image(s) could not be captioned; see the table above"
            )

    run_api(call)
