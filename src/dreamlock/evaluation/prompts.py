"""Evaluation prompts: recontextualisation prompts for the subject, class prompts for drift.

A prompt file has one prompt per line (blank lines and ``#`` comments skipped) with ``{trigger}``
and ``{class_word}`` placeholders. A prompt that uses the trigger is a *subject* prompt (scored for
subject and prompt fidelity); one without it is a *class* prompt (scored for class drift).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from dreamlock.errors import UserError
from dreamlock.toyworld.vocab import CLASSES, SCENES, caption_for, parse_text, subject_prompt


@dataclass
class EvalPrompt:
    """One prompt as sent to the generator, its kind, and what it asks for.

    ``attrs`` holds the prompted attributes a scorer can check (``class``, ``colour``, ``scene``;
    only those the prompt names) and ``text``: the prompt with the trigger word removed, which is
    what an image-text model such as CLIP can read.
    """

    text: str
    kind: str  # "subject" or "class"
    attrs: dict = field(default_factory=dict)


def _strip_trigger(text: str, trigger: str) -> str:
    return re.sub(rf"\s*\b{re.escape(trigger)}\b", "", text).strip()


def make_prompt(text: str, trigger: str, class_word: str) -> EvalPrompt:
    """Classify ``text`` as a subject or class prompt and read its prompted attributes."""
    is_subject = re.search(rf"\b{re.escape(trigger)}\b", text) is not None
    parsed = parse_text(text)
    attrs: dict = {"text": _strip_trigger(text, trigger) if is_subject else text, "scene": parsed["scene"]}
    cls = parsed["class"] or (class_word if class_word in CLASSES and re.search(rf"\b{re.escape(class_word)}\b", text) else None)
    if cls:
        attrs["class"] = cls
    if parsed["colour"]:
        attrs["colour"] = parsed["colour"]
    return EvalPrompt(text=text, kind="subject" if is_subject else "class", attrs=attrs)


def default_prompts(trigger: str, class_word: str) -> list[EvalPrompt]:
    """The subject in every non-plain scene (absent from the plain-scene references), and the
    class word alone in every scene (for drift)."""
    subject = [subject_prompt(trigger, class_word, s) for s in SCENES if s != "plain"]
    klass = [caption_for(class_word, None, s) for s in SCENES]
    return [make_prompt(t, trigger, class_word) for t in subject + klass]


def fill(template: str, trigger: str, class_word: str) -> str:
    """Substitute ``{trigger}`` and ``{class_word}``; other braces are left as written."""
    return template.replace("{trigger}", trigger).replace("{class_word}", class_word)


def load_prompts(path: str | Path, trigger: str, class_word: str) -> list[EvalPrompt]:
    """Read a prompt file (one per line, ``{trigger}``/``{class_word}`` placeholders)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"prompts file not found: {path} (give a text file with one prompt per line)")
    lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()]
    prompts = [make_prompt(fill(ln, trigger, class_word), trigger, class_word) for ln in lines if ln and not ln.startswith("#")]
    if not prompts:
        raise UserError(f"{path}: no prompts in it; write one prompt per line, e.g. 'a photo of {{trigger}} {{class_word}} on the beach'")
    return prompts


def with_alternatives(prompts: list[EvalPrompt]) -> list[EvalPrompt]:
    """Give each prompt's attrs the texts of the other prompts of its kind (``alternatives``):
    an image-text scorer judges a match as "closer to its own prompt than to any other"."""
    for p in prompts:
        p.attrs["alternatives"] = [q.attrs["text"] for q in prompts if q.kind == p.kind and q.attrs["text"] != p.attrs["text"]]
    return prompts


__all__ = ["EvalPrompt", "default_prompts", "fill", "load_prompts", "make_prompt", "with_alternatives"]
