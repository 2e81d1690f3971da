"""The demo's judge (`toyworld.demo.judge_generations`) on renders whose answer is known: the real
toy oracle, no training (plumbing of the verdict on the shipped judge)."""

from dreamlock.toyworld.demo import by_prompt, judge_generations
from dreamlock.toyworld.subjects import DEMO_SUBJECT, builtin_subject, write_reference_set
from dreamlock.toyworld.vocab import subject_prompt


def test_the_subject_counts_only_in_the_scene_its_prompt_asks_for(tmp_path):
    spec = builtin_subject(DEMO_SUBJECT)
    refs = tmp_path / "refs"
    write_reference_set(spec, refs, n=5, scenes=("plain",) * 3 + ("forest",) * 2)
    beach = write_reference_set(spec, tmp_path / "beach", n=4, seed=7, scenes=("beach",) * 4)
    plain = write_reference_set(spec, tmp_path / "plain", n=4, seed=8, scenes=("plain",) * 4)
    other = write_reference_set(builtin_subject("fresh:28"), tmp_path / "other", n=4, seed=9, scenes=("beach",) * 4)
    on_the_beach = subject_prompt("sks", spec.class_word, "beach")

    right = judge_generations(refs, {on_the_beach: beach})
    assert right["accepted"] == 4 and right["locked"] and right["line"].startswith("Locked")

    memorised = judge_generations(refs, {on_the_beach: beach + plain})  # the photos' backdrop, not the beach
    assert memorised["accepted"] == 4 and memorised["subject_elsewhere"] == 4 and not memorised["locked"]
    assert "4 more show it in another scene" in memorised["line"]

    impostor = judge_generations(refs, {on_the_beach: other})
    assert impostor["accepted"] == 0 and impostor["subject_elsewhere"] == 0


def test_generated_files_are_grouped_under_their_prompt(tmp_path):
    names = ["00-a-seed0.png", "00-a-seed1.png", "00-a-grid.png", "01-b-seed0.png"]
    written = [tmp_path / n for n in names]
    assert by_prompt(["a", "b"], written) == {"a": written[:2], "b": written[3:]}
