"""The toy world's whole vocabulary, in one place.

Every word a caption or prompt can use lives here, so that the tokenizer (built by the base-model
code from :func:`all_words`) knows each of them as one token. Identifier tokens (``sks``...) are
in the word list but never appear in pretraining captions: they are free for DreamBooth to bind.
"""

from __future__ import annotations

import re

#: Object classes, chosen for silhouettes that stay distinct at 64 px and after blur.
CLASSES: tuple[str, ...] = ("star", "heart", "ring", "triangle", "cross")

#: Body colours (saturated, well separated hues) as sRGB triples.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 35),
    "orange": (245, 135, 20),
    "yellow": (245, 215, 25),
    "green": (40, 175, 60),
    "blue": (35, 75, 225),
    "purple": (145, 45, 190),
}

#: Scenes. ``plain`` is the studio backdrop and has no phrase in captions.
SCENES: tuple[str, ...] = ("plain", "beach", "snow", "forest", "night")

#: How each scene is said in a caption (empty for the plain scene).
SCENE_PHRASES: dict[str, str] = {
    "plain": "",
    "beach": "on the beach",
    "snow": "in the snow",
    "forest": "in the forest",
    "night": "at night",
}

#: Colours used only for subject details (patterns, emblems, two-tone markings): the body
#: colours plus white and black, so a detail always contrasts with the body.
DETAIL_COLOURS: dict[str, tuple[int, int, int]] = {
    **COLOURS,
    "white": (250, 250, 250),
    "black": (25, 25, 30),
}

#: Subject details. ``none`` is what pretraining shows: a plain object.
DETAILS: tuple[str, ...] = ("none", "stripes", "dots", "checker", "twotone", "emblem")

#: Rare identifier tokens, never used in pretraining captions.
IDENTIFIERS: tuple[str, ...] = ("sks", "zwx", "qrv", "tok")

_BASE_WORDS = ("a", "an", "photo", "of")


def article(word: str) -> str:
    """``a`` or ``an`` for the word that follows."""
    return "an" if word[:1] in "aeiou" else "a"


def caption_for(cls: str, colour: str | None, scene: str) -> str:
    """The pretraining caption, e.g. ``a photo of a red star on the beach``.

    ``colour=None`` gives the class caption ``a photo of a star``.
    """
    noun = f"{colour} {cls}" if colour else cls
    text = f"a photo of {article(noun)} {noun}"
    phrase = SCENE_PHRASES[scene]
    return f"{text} {phrase}" if phrase else text


def subject_prompt(trigger: str, class_word: str, scene: str = "plain") -> str:
    """A DreamBooth prompt for a subject, e.g. ``a photo of sks star on the beach``."""
    phrase = SCENE_PHRASES[scene]
    text = f"a photo of {trigger} {class_word}"
    return f"{text} {phrase}" if phrase else text


def all_words() -> list[str]:
    """Every word any caption or prompt uses, plus the identifier tokens (sorted, unique)."""
    words = set(_BASE_WORDS) | set(CLASSES) | set(COLOURS) | set(IDENTIFIERS)
    for phrase in SCENE_PHRASES.values():
        words.update(phrase.split())
    return sorted(words)


def parse_text(text: str) -> dict[str, str | None]:
    """Read class, colour and scene out of a caption or prompt.

    Returns ``{"class": ..., "colour": ..., "scene": ...}``; class and colour are None when the
    text names none; scene is ``plain`` when no scene phrase is present.
    """
    lowered = " ".join(re.findall(r"[a-z]+", text.lower()))
    words = lowered.split()
    cls = next((w for w in words if w in CLASSES), None)
    colour = next((w for w in words if w in COLOURS), None)
    scene = "plain"
    for name, phrase in SCENE_PHRASES.items():
        if phrase and f" {phrase} " in f" {lowered} ":
            scene = name
    return {"class": cls, "colour": colour, "scene": scene}
