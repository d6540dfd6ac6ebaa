"""Requests the CLI cannot serve are one-line errors, not crashes or hangs: too many frames, a pipe for an image, bad
outputs and seeds; too many threads are clamped."""

import os
import time

import pytest
from helpers import nca, one_line_error, run_main


@pytest.mark.slow  # an nca process
def test_grow_refuses_frames_beyond_the_memory_cap_up_front(model, tmp_path):
    started = time.perf_counter()
    result = nca("grow", model, "-o", tmp_path / "big.gif", "--size", "256", "--steps", "2000", "--every", "1", timeout=60)
    one_line_error(result, "2,001 frames", "MB", "cap")
    assert time.perf_counter() - started < 30 and not (tmp_path / "big.gif").exists()


@pytest.mark.slow  # an nca process
def test_more_threads_than_cores_are_clamped_not_a_crash(model, tmp_path):
    result = nca("--threads", "100000", "grow", model, "-o", tmp_path / "x.png", "--size", "32", "--steps", "4")
    assert result.returncode == 0, result.stderr
    assert "--threads 100000 is more than the" in result.stderr and (tmp_path / "x.png").exists()


@pytest.mark.slow  # an nca process
def test_training_from_a_pipe_is_refused_not_a_hang(tmp_path, tiny_flags):
    fifo = tmp_path / "texture.png"
    os.mkfifo(fifo)
    one_line_error(nca("train", fifo, "-o", tmp_path / "m", *tiny_flags(), timeout=60), "not a regular file")


def test_grow_output_and_seed_errors_are_one_line(model, tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("mine")
    (tmp_path / "folder.gif").mkdir()
    one_line_error(run_main(capsys, "grow", model, "-o", tmp_path / "folder.gif"), "is a folder")
    one_line_error(run_main(capsys, "grow", model, "-o", afile / "x.png"), "is a file, not a folder")
    one_line_error(run_main(capsys, "grow", model, "-o", tmp_path / "x.png", "--seed", "99999999999999999999999"), "seed must be")
    one_line_error(run_main(capsys, "train", afile, "-o", tmp_path / "m", "--seed", "99999999999999999999999"), "seed must be")
    assert afile.read_text() == "mine"
