"""The one progress style: a plain line every few seconds and at the end when the output is not a
terminal (log files, CI, notebooks), so long steps are never silent."""

from __future__ import annotations

import io

from rich.console import Console

from dreamlock.progress import progress, track


def test_lines_when_not_a_terminal():
    out = io.StringIO()
    with progress("train", 4, every=0.0, console=Console(file=out)) as bar:
        bar.update(1, "loss 0.5000")
        bar.advance(1)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("train: 1/4 (25%) loss 0.5000 · 0s elapsed, ~")
    assert lines[-1].startswith("train: 2/4 (50%) loss 0.5000")  # the closing line, whatever the interval
    assert len(lines) == 3


def test_quiet_between_intervals_but_always_a_closing_line():
    out = io.StringIO()
    with progress("class images", 10, every=3600, console=Console(file=out)) as bar:
        for _ in range(10):
            bar.advance()
    assert out.getvalue().splitlines() == [out.getvalue().splitlines()[0]]
    assert out.getvalue().startswith("class images: 10/10 (100%) · ")


def test_track_yields_everything_and_can_be_silent(capsys):
    assert list(track([1, 2, 3], "x", show=False)) == [1, 2, 3]
    assert capsys.readouterr().err == ""
    assert list(track([1, 2], "preparing")) == [1, 2]
    assert "preparing: 2/2 (100%)" in capsys.readouterr().err
