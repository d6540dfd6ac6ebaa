"""Atomic writes: a failed write leaves the old file, a folder that cannot be written is refused up front."""

import os
import time

import pytest

from nca_gradio.atomic import LEFTOVER_SECONDS, TEMP_PREFIX, SaveError, prepare_folder, replacing, write_text


def test_a_writer_that_fails_leaves_the_old_file_and_no_temporary_one(tmp_path):
    path = write_text(tmp_path / "training.json", "the good one")
    with pytest.raises(RuntimeError, match="the writer broke"), replacing(path) as temp:
        temp.write_text("half of the new")
        raise RuntimeError("the writer broke")
    with pytest.raises(SaveError, match="cut short"), replacing(path, check=lambda p: "cut short") as temp:
        temp.write_text("a new one, but incomplete")
    assert path.read_text() == "the good one" and os.listdir(tmp_path) == ["training.json"]
    write_text(path, "the new one")
    assert path.read_text() == "the new one" and os.listdir(tmp_path) == ["training.json"]


def test_prepare_folder_refuses_files_on_the_way_and_removes_only_old_leftovers(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("mine")
    for bad in (afile, afile / "sub" / "deeper"):
        with pytest.raises(SaveError, match=f"{afile} is a file, not a folder"):
            prepare_folder(bad)
    folder = tmp_path / "new" / "model"
    assert prepare_folder(folder).is_dir() and os.listdir(folder) == []
    old, fresh = folder / f"{TEMP_PREFIX}state-1.safetensors", folder / f"{TEMP_PREFIX}state-2.safetensors"
    old.write_bytes(b"left by kill -9"), fresh.write_bytes(b"being written")
    past = time.time() - LEFTOVER_SECONDS - 5
    os.utime(old, (past, past))
    prepare_folder(folder)
    assert os.listdir(folder) == [fresh.name]
