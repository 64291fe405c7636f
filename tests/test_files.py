"""core.files: a write or a folder replacement is seen whole or not at all, and leaves nothing behind."""

import os

import pytest

from nbtoolkit.core.files import atomic_write, replace_folder, slug, stale_asides, write_json, write_text


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = write_text(tmp_path / "a.txt", "old")

    def half_then_fail(tmp):
        open(tmp, "w").write("ne")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError, match="killed"):
        atomic_write(path, half_then_fail)
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]
    write_json(path, {"x": 1})
    assert path.read_text() == '{\n "x": 1\n}'


def test_replace_folder_swaps_whole_folders(tmp_path):
    target = tmp_path / "run"
    (target / "old_only").mkdir(parents=True)
    (target / "old_only" / "f").write_text("old")
    new = tmp_path / "new"
    new.mkdir()
    (new / "f").write_text("new")
    assert replace_folder(new, target) == target
    assert sorted(p.name for p in target.iterdir()) == ["f"]  # nothing of the old run is kept
    assert (target / "f").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no aside folder, no source left


def test_replace_folder_into_a_new_place(tmp_path):
    new = tmp_path / "new"
    new.mkdir()
    replace_folder(new, tmp_path / "fresh")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fresh"]


def test_slug_keeps_safe_characters_only():
    assert slug("meta-llama/Llama 2: 7b?") == "meta-llama_Llama_2_7b_"
    assert slug("x" * 100, max_length=5) == "xxxxx"


def test_replace_folder_keeps_the_old_folder_when_it_cannot_finish(tmp_path, monkeypatch):
    target = tmp_path / "run"
    target.mkdir()
    (target / "f").write_text("old")
    with pytest.raises(FileNotFoundError, match="no finished folder"):
        replace_folder(tmp_path / "missing", target)
    new = tmp_path / "new"
    new.mkdir()
    real_replace = os.replace

    def fail_on_the_new_folder(src, dst):
        if str(src) == str(new):
            raise OSError("disk full")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", fail_on_the_new_folder)
    with pytest.raises(OSError, match="disk full"):
        replace_folder(new, target)
    assert (target / "f").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new", "run"]  # no aside folder left


def test_a_writer_that_lost_the_race_raises_its_own_error_and_keeps_the_winner(tmp_path, monkeypatch):
    target, new = tmp_path / "run", tmp_path / "new"
    target.mkdir()
    new.mkdir()
    real_replace = os.replace

    def another_writer_wins(src, dst):
        if str(src) == str(new):
            (target / "theirs").mkdir(parents=True)  # published between our two renames
            raise OSError("directory not empty")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", another_writer_wins)
    with pytest.raises(OSError, match="directory not empty"):
        replace_folder(new, target)
    assert [p.name for p in target.iterdir()] == ["theirs"]
    assert not stale_asides(target)


def test_stale_asides_finds_what_a_killed_replace_left(tmp_path):
    for name in ("run", "shard-1", "shard-2"):
        (tmp_path / f".{name}-stale-x1" / name).mkdir(parents=True)
    (tmp_path / ".other.tmp-x").mkdir()
    assert [p.name for p in stale_asides(tmp_path / "run")] == [".run-stale-x1"]
    assert sorted(p.name for p in stale_asides(tmp_path / "shard-*")) == [".shard-1-stale-x1",
                                                                           ".shard-2-stale-x1"]
