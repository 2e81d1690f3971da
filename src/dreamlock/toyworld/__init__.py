"""The toy world: a tiny, fully synthetic text-to-image world small enough for 2 CPU cores.

A renderer (one object on one scene, captioned), subjects (unique objects with a distinctive
detail that pretraining never shows), and an oracle CNN that judges class, colour, scene and
identity (``dreamlock.toyworld.oracle``, imported on demand since it needs torch). Together they
make "the subject is locked in" a measured fact.
"""

from __future__ import annotations

from dreamlock.toyworld.render import Look, render, render_dataset, render_look, write_dataset
from dreamlock.toyworld.subjects import (
    BUILTIN_SUBJECTS, SubjectSpec, builtin_subject, make_subject, reference_images, render_subject, write_reference_set,
)
from dreamlock.toyworld.vocab import CLASSES, COLOURS, SCENES, all_words, caption_for, parse_text, subject_prompt

__all__ = [
    "BUILTIN_SUBJECTS", "CLASSES", "COLOURS", "SCENES", "Look", "SubjectSpec", "all_words", "builtin_subject",
    "caption_for", "make_subject", "parse_text", "reference_images", "render", "render_dataset", "render_look",
    "render_subject", "subject_prompt", "write_dataset", "write_reference_set",
]
