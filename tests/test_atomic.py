"""dreamlock.atomic: a write either lands whole under the real name or leaves the old file as it was
(plumbing; no model)."""

import pytest

from dreamlock.atomic import atomic_path, write_bytes, write_text


def test_write_replaces_the_file_and_leaves_no_scratch(tmp_path):
    target = tmp_path / "caption.txt"
    target.write_text("old")
    write_text(target, "new ünïcode")
    write_bytes(tmp_path / "raw.bin", b"\x00\x01")
    assert target.read_text(encoding="utf-8") == "new ünïcode"
    assert (tmp_path / "raw.bin").read_bytes() == b"\x00\x01"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["caption.txt", "raw.bin"]


def test_a_failed_write_keeps_the_old_file_and_removes_the_scratch(tmp_path):
    target = tmp_path / "report.json"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as scratch:
            scratch.write_text("half")
            assert scratch.name.startswith(".")  # hidden: folder listings of images/captions skip it
            raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]
