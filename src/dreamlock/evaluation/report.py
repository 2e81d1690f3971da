"""The evaluation report: ``metrics.json``, ``report.md`` and one PNG grid per prompt."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any, Sequence

from PIL import Image

#: Metric names, in report order, with what each means.
METRIC_NOTES: dict[str, str] = {
    "subject_fidelity": "mean cosine similarity, generated vs reference (identity embedding); higher is better",
    "subject_fidelity_rel": "subject_fidelity / reference-vs-reference similarity; 1.0 = as alike as the references",
    "prompt_fidelity": "fraction of subject generations whose prompted attributes match the prompt; higher is better",
    "judged_subject": "fraction of subject generations judged to be the subject (similarity above the threshold below)",
    "judged_in_scene": "the same, counting only images in the scene the prompt asks for (the scorer's scene call); higher is better",
    "class_drift": "PRES: mean cosine similarity, class-prompt generations vs reference (identity embedding); lower is better",
    "class_drift_share": "fraction of class-prompt generations judged to be the subject (see threshold below); lower is better",
    "diversity": "DIV: mean pairwise distance among generations of one prompt, averaged (measure below); higher is more varied",
    "class_diversity": "the same, over class prompts",
    "clip_i": "CLIP-I: mean CLIP image-embedding cosine, subject generations vs reference (clip-dino scorer only)",
    "clip_t": "CLIP-T: mean CLIP image-text similarity of subject generations to their prompt (clip-dino scorer only)",
    "reference_self_similarity": "mean reference-vs-reference cosine similarity (off-diagonal)",
    "drift_threshold": "identity similarity to the reference centroid above which an image is 'the subject'",
}


def image_grid(images: Sequence[Image.Image], cols: int = 8, min_tile: int = 128, pad: int = 2) -> Image.Image:
    """Tile images in rows of ``cols``; tiles below ``min_tile`` px are enlarged (nearest)."""
    if not images:
        return Image.new("RGB", (min_tile, min_tile), "white")
    w, h = images[0].size
    factor = max(1, math.ceil(min_tile / max(w, h)))
    tw, th = w * factor, h * factor
    cols = max(1, min(cols, len(images)))
    rows = math.ceil(len(images) / cols)
    grid = Image.new("RGB", (cols * tw + (cols + 1) * pad, rows * th + (rows + 1) * pad), "white")
    for i, img in enumerate(images):
        tile = img.convert("RGB").resize((tw, th), Image.NEAREST) if img.size != (tw, th) else img.convert("RGB")
        grid.paste(tile, (pad + (i % cols) * (tw + pad), pad + (i // cols) * (th + pad)))
    return grid


def _slug(text: str, limit: int = 40) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:limit] or "prompt"


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def write_report(
    out: str | Path,
    result: dict[str, Any],
    generations: Sequence[Sequence[Image.Image]],
    references: Sequence[Image.Image],
    codec_images: Sequence[Image.Image] | None = None,
) -> dict[str, Path]:
    """Write ``metrics.json``, ``report.md`` and ``grids/*.png`` into ``out``.

    ``generations[i]`` are the images of ``result["per_prompt"][i]``. Returns the paths written.
    """
    out = Path(out)
    grids = out / "grids"
    grids.mkdir(parents=True, exist_ok=True)
    image_grid(references).save(grids / "references.png")
    if codec_images:
        image_grid(codec_images).save(grids / "references-codec.png")
    rows = []
    for i, (entry, images) in enumerate(zip(result["per_prompt"], generations)):
        name = f"{i:02d}-{entry['kind']}-{_slug(entry['prompt'])}.png"
        image_grid(images).save(grids / name)
        entry["grid"] = f"grids/{name}"
        rows.append(entry)
    metrics_path = out / "metrics.json"
    metrics_path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    report_path = out / "report.md"
    report_path.write_text(render_markdown(result))
    return {"metrics": metrics_path, "report": report_path, "grids": grids}


def render_markdown(result: dict[str, Any]) -> str:
    """The report's markdown: settings, metrics table, per-prompt table and grids."""
    s = result.get("settings", {})
    lines = [
        "# dreamlock evaluation",
        "",
        f"Run: `{s.get('run') or 'n/a'}` · scorer `{result.get('scorer')}` · trigger `{s.get('trigger')}` · "
        f"class word `{s.get('class_word')}` · {len(s.get('seeds', []))} seeds · {s.get('steps')} steps · "
        f"guidance {s.get('guidance')} · {result.get('n_references')} reference images",
        "",
        "## Metrics",
        "",
        "| metric | value | meaning |",
        "|---|---|---|",
    ]
    for name, note in METRIC_NOTES.items():
        if name in result:
            lines.append(f"| `{name}` | {_fmt(result[name])} | {note} |")
    if "diversity_measure" in result:
        lines += ["", f"Diversity measure: {result['diversity_measure']}: {result.get('diversity_measure_detail', '')}."]
    codec = result.get("codec_ceiling")
    if codec:
        lines += ["", f"Codec ceiling: the references sent through the model's VAE at {codec.get('resolution', '?')} px "
                  f"score `subject_fidelity` {_fmt(codec['subject_fidelity'])} (`_rel` {_fmt(codec['subject_fidelity_rel'])}) "
                  f"against the other references; the generations score {_fmt(result.get('subject_fidelity'))} "
                  f"(`_rel` {_fmt(result.get('subject_fidelity_rel'))}). A ceiling well below `_rel` 1.0 is a codec limit; "
                  f"generations well below the ceiling are a training limit. (Each reference vs its own round trip: "
                  f"{_fmt(codec.get('same_image'))}.)"]
    calib = result.get("drift_calibration", {})
    if calib:
        lines += ["", "Class-drift threshold calibration: " + ", ".join(f"{k} = {_fmt(v)}" for k, v in calib.items())]
    lines += ["", "## References", "", "![references](grids/references.png)"]
    if codec:
        lines += ["", "After the VAE round trip:", "", "![references after the VAE](grids/references-codec.png)"]
    lines += ["", "## Prompts", "",
              "| # | prompt | kind | prompt match | subject fidelity (class rows: PRES) | judged subject | in the asked scene | diversity |",
              "|---|---|---|---|---|---|---|---|"]
    for i, e in enumerate(result.get("per_prompt", [])):
        lines.append(f"| {i} | {e['prompt']} | {e['kind']} | {_fmt(e.get('prompt_fidelity'))} | "
                     f"{_fmt(e.get('subject_fidelity'))} | {_fmt(e.get('judged_subject'))} | "
                     f"{_fmt(e.get('judged_in_scene'))} | {_fmt(e.get('diversity'))} |")
    for i, e in enumerate(result.get("per_prompt", [])):
        if "grid" in e:
            lines += ["", f"### {i}. {e['prompt']}", "", f"![{e['prompt']}]({e['grid']})"]
    return "\n".join(lines) + "\n"
