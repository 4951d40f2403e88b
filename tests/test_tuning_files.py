"""`jaxconv.tuning.files`: a file is replaced whole or left as it was."""

import pytest

from jaxconv.tuning import files


def test_a_write_replaces_the_file_whole(tmp_path):
    target = tmp_path / "sub" / "result.json"
    files.atomic_write_text(target, "first")
    files.atomic_write_text(target, "second")
    assert target.read_text() == "second"
    assert [p.name for p in target.parent.iterdir()] == ["result.json"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "result.json"
    files.atomic_write_text(target, "kept")

    def full_disk(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files.os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space"):
        files.atomic_write_text(target, "lost")
    assert target.read_text() == "kept"
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]
