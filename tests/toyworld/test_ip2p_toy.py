"""The shipped toy editor learned to edit (toy world; learning): on held-out objects it moves them to
the instructed scene and keeps class and colour far more often than the same model before training,
which ignores the image (benchmarks/edit_route.json: 1.00 / 0.72 against 0.98 / 0.05 on 60 report
pairs; asserted here on 16 other pairs, with margin)."""

from __future__ import annotations

from dreamlock.editing import Editor, load_editor
from dreamlock.families import get_family
from dreamlock.generation import Generator
from dreamlock.toyworld.edits import judge_object_edits
from dreamlock.toyworld.paths import resolve_model


def test_the_toy_editor_moves_objects_and_keeps_them():
    trained = judge_object_edits(load_editor("toy-editor"), n=16, seed=30_000)["edits"]
    untrained_pipe = get_family("ip2p").load_pipeline(resolve_model("toy"))
    editor = Editor(Generator(untrained_pipe, None, resolve_model("toy-editor")))  # the editor's guidance scales
    untrained = judge_object_edits(editor, n=16, seed=30_000)["edits"]
    assert trained["scene"] >= 0.8, trained
    assert trained["kept"] >= 0.45, trained
    assert untrained["kept"] <= 0.3 and trained["kept"] - untrained["kept"] >= 0.3, (trained, untrained)
