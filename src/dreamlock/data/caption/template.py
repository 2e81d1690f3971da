"""Caption text: the ``template`` captioner and how trigger, class word, prefix and suffix are added.

- ``TemplateCaptioner`` ignores the image and fills a template (default
  ``a photo of {trigger} {class_word}``).
- ``insert_subject`` puts the trigger into a model's caption: before the first occurrence of the
  class word ("a dog on grass" -> "a sks dog on grass"), else as a ``"{trigger} {class_word}, "``
  prefix. A caption that already holds the trigger is left alone.
- ``compose`` adds the subject, then joins prefix, caption and suffix with ", ".
"""

from __future__ import annotations

import re
import string

from PIL import Image

from dreamlock.errors import UserError

DEFAULT_TEMPLATE = "a photo of {trigger} {class_word}"
_FIELDS = {"trigger", "class_word"}


def _squash(text: str) -> str:
    """Collapse runs of whitespace and strip."""
    return " ".join(text.split())


def _word_pattern(word: str) -> re.Pattern[str]:
    return re.compile(rf"(?<!\w){re.escape(word)}(?!\w)", re.IGNORECASE)


def fill_template(template: str, trigger: str | None, class_word: str | None) -> str:
    """Fill ``{trigger}`` and ``{class_word}``; a missing value drops its placeholder."""
    names = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    unknown = names - _FIELDS
    if unknown:
        raise UserError(
            f"caption template {template!r}: unknown placeholder {{{sorted(unknown)[0]}}}; use {{trigger}} and {{class_word}}"
        )
    if names and not (trigger or class_word):
        raise UserError("template captioner: give --trigger and/or --class-word (the template uses them)")
    return _squash(template.format(trigger=trigger or "", class_word=class_word or ""))


def insert_subject(text: str, trigger: str | None, class_word: str | None) -> str:
    """Insert the trigger before the class word, else prefix ``"{trigger} {class_word}, "``."""
    text = _squash(text)
    if not trigger or _word_pattern(trigger).search(text):
        return text
    if class_word and (match := _word_pattern(class_word).search(text)):
        return f"{text[: match.start()]}{trigger} {text[match.start() :]}"
    subject = f"{trigger} {class_word}" if class_word else trigger
    return f"{subject}, {text}" if text else subject


def compose(
    text: str, trigger: str | None = None, class_word: str | None = None, prefix: str = "", suffix: str = ""
) -> str:
    """The final sidecar text: subject inserted, then ``prefix, caption, suffix`` (empty parts dropped)."""
    parts = [prefix, insert_subject(text, trigger, class_word), suffix]
    return ", ".join(p for p in (_squash(x).strip(" ,") for x in parts) if p)


class TemplateCaptioner:
    """Captions every image with the same filled template; needs no model."""

    def __init__(
        self,
        model: str | None = None,
        template: str = DEFAULT_TEMPLATE,
        trigger: str | None = None,
        class_word: str | None = None,
    ):
        if model:
            raise UserError("template captioner takes no --model; use --template to change the text")
        self.text = fill_template(template, trigger, class_word)

    def caption(self, image: Image.Image) -> str:
        """The filled template (the image is not looked at)."""
        return self.text
