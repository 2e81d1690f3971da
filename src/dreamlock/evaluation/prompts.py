"""Evaluation prompts: recontextualisation prompts for the subject, class prompts for drift.

A prompt file has one prompt per line (blank lines and ``#`` comments skipped) with ``{trigger}``
and ``{class_word}`` placeholders. A prompt that uses the trigger is a *subject* prompt (scored for
subject and prompt fidelity); one without it is a *class* prompt (scored for class drift).

Default prompts follow the model's world: :func:`default_prompts` for the toy world,
:func:`dreambench_prompts` (the DreamBooth paper's evaluation prompts) for real models.
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
    """Toy-world prompts: the subject in every non-plain scene (absent from the plain-scene references), and the
    class word alone in every scene (for drift)."""
    subject = [subject_prompt(trigger, class_word, s) for s in SCENES if s != "plain"]
    klass = [caption_for(class_word, None, s) for s in SCENES]
    return [make_prompt(t, trigger, class_word) for t in subject + klass]


#: DreamBench's recontextualisation prompts for objects (Ruiz et al. 2023, DreamBooth, the
#: paper's evaluation set): ``{trigger}`` is the unique identifier, ``{class_word}`` the class noun.
DREAMBENCH_OBJECT_PROMPTS: tuple[str, ...] = (
    "a {trigger} {class_word} in the jungle",
    "a {trigger} {class_word} in the snow",
    "a {trigger} {class_word} on the beach",
    "a {trigger} {class_word} on a cobblestone street",
    "a {trigger} {class_word} on top of pink fabric",
    "a {trigger} {class_word} on top of a wooden floor",
    "a {trigger} {class_word} with a city in the background",
    "a {trigger} {class_word} with a mountain in the background",
    "a {trigger} {class_word} with a blue house in the background",
    "a {trigger} {class_word} on top of a purple rug in a forest",
    "a {trigger} {class_word} with a wheat field in the background",
    "a {trigger} {class_word} with a tree and autumn leaves in the background",
    "a {trigger} {class_word} with the Eiffel Tower in the background",
    "a {trigger} {class_word} floating on top of water",
    "a {trigger} {class_word} floating in an ocean of milk",
    "a {trigger} {class_word} on top of green grass with sunflowers around it",
    "a {trigger} {class_word} on top of a mirror",
    "a {trigger} {class_word} on top of the sidewalk in a crowded street",
    "a {trigger} {class_word} on top of a dirt road",
    "a {trigger} {class_word} on top of a white rug",
    "a red {trigger} {class_word}",
    "a purple {trigger} {class_word}",
    "a shiny {trigger} {class_word}",
    "a wet {trigger} {class_word}",
    "a cube shaped {trigger} {class_word}",
)

#: DreamBench's recontextualisation prompts for live subjects (pets; used for people too).
DREAMBENCH_LIVE_PROMPTS: tuple[str, ...] = (
    *DREAMBENCH_OBJECT_PROMPTS[:10],
    "a {trigger} {class_word} wearing a red hat",
    "a {trigger} {class_word} wearing a santa hat",
    "a {trigger} {class_word} wearing a rainbow scarf",
    "a {trigger} {class_word} wearing a black top hat and a monocle",
    "a {trigger} {class_word} in a chef outfit",
    "a {trigger} {class_word} in a firefighter outfit",
    "a {trigger} {class_word} in a police outfit",
    "a {trigger} {class_word} wearing pink glasses",
    "a {trigger} {class_word} wearing a yellow shirt",
    "a {trigger} {class_word} in a purple wizard outfit",
    *DREAMBENCH_OBJECT_PROMPTS[20:],
)

#: Class words that take the live-subject prompts (outfits, hats) instead of the object prompts.
LIVE_CLASS_WORDS = frozenset({
    "dog", "cat", "puppy", "kitten", "pet", "animal", "bird", "parrot", "rabbit", "bunny", "hamster", "horse",
    "pony", "cow", "pig", "sheep", "goat", "fox", "bear", "monkey", "lion", "tiger", "wolf", "raccoon", "duck",
    "person", "man", "woman", "boy", "girl", "child", "kid", "baby", "people", "guy", "lady", "gentleman",
})


def is_live_subject(class_word: str) -> bool:
    """Whether the class word names a live subject (an animal or a person), read off its last word
    (``corgi dog`` is a dog; ``dogs`` too)."""
    words = re.findall(r"[a-z]+", class_word.lower())
    if not words:
        return False
    last = words[-1]
    return last in LIVE_CLASS_WORDS or (last.endswith("s") and last[:-1] in LIVE_CLASS_WORDS)


def dreambench_prompts(trigger: str, class_word: str) -> list[EvalPrompt]:
    """DreamBench's 25 recontextualisation prompts (the live-subject or the object set, by
    :func:`is_live_subject`) as subject prompts, then the same 25 without the trigger as class
    prompts (what the model draws for the bare class: class drift / PRES)."""
    templates = DREAMBENCH_LIVE_PROMPTS if is_live_subject(class_word) else DREAMBENCH_OBJECT_PROMPTS
    subject = [fill(t, trigger, class_word) for t in templates]
    klass = [re.sub(r"\s+", " ", fill(t, "", class_word)).strip() for t in templates]
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


__all__ = ["DREAMBENCH_LIVE_PROMPTS", "DREAMBENCH_OBJECT_PROMPTS", "EvalPrompt", "default_prompts", "dreambench_prompts",
           "fill", "is_live_subject", "load_prompts", "make_prompt", "with_alternatives"]
