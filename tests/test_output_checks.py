"""Outputs are checked before any work, and what is already there is not lost: unwritable outputs, a full disk, a model
trained over, videos written over. Real processes and real files."""

import json
import shutil
import time

import pytest
from helpers import nca, one_line_error, run_main, small_files_only, snapshot

from nca_gradio import cli
from nca_gradio.images import load_target
from nca_gradio.train import Trainer


@pytest.mark.parametrize("case", ["read-only", "a file", "under a file"])
def test_train_refuses_an_output_it_cannot_write_before_training(case, unwritable, tmp_path, pebbles_path, capsys, tiny_flags):
    afile = tmp_path / "afile"
    afile.write_text("mine")
    output = {"read-only": unwritable / "model", "a file": afile, "under a file": afile / "sub"}[case]
    started = time.perf_counter()
    code, stderr = run_main(capsys, "train", pebbles_path, "-o", output, "--iters", "30", *tiny_flags())
    line = one_line_error((code, stderr), str(output if case != "under a file" else afile))
    assert "training" not in stderr.replace(line, "") and time.perf_counter() - started < 20  # refused before training
    assert afile.read_text() == "mine"


@pytest.mark.slow  # a training process
def test_a_full_disk_at_save_says_what_failed_and_keeps_the_last_good_checkpoint(model, tmp_path, pebbles_path, tiny_flags):
    """RLIMIT_FSIZE makes every write past 100 kB fail as a full disk would (EFBIG instead of ENOSPC)."""
    folder = tmp_path / "model"
    shutil.copytree(model, folder)
    before = snapshot(folder)

    result = nca("train", pebbles_path, "-o", folder, "--resume", "--iters", "5", *tiny_flags(), preexec_fn=small_files_only)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert "could not write" in result.stderr and "training_state.safetensors" in result.stderr
    assert snapshot(folder) == before  # nothing half-written, no temporary file left behind
    trainer = Trainer.resume(folder, load_target(pebbles_path, 64), {"iters": 5}, log=lambda m: None)
    assert trainer.iteration == 3


@pytest.mark.slow
def test_train_into_an_existing_model_needs_resume_or_force(model, tmp_path, pebbles_path, capsys, tiny_flags):
    folder = tmp_path / "model"
    shutil.copytree(model, folder)
    before = snapshot(folder)
    one_line_error(run_main(capsys, "train", pebbles_path, "-o", folder, "--iters", "2", *tiny_flags()), "already holds a model",
                   "--resume", "--force")
    assert snapshot(folder) == before
    assert run_main(capsys, "train", pebbles_path, "-o", folder, "--iters", "1", "--force", *tiny_flags())[0] == 0
    assert json.loads((folder / "training.json").read_text())["iterations"] == 1


@pytest.mark.parametrize("command", ["grow", "heal"])
@pytest.mark.parametrize("suffix", ["mp4", "gif"])
def test_a_failed_video_write_is_an_error_not_wrote(command, suffix, model, unwritable, capsys):
    out = unwritable / f"y.{suffix}"
    at = ["--at", "4"] if command == "heal" else []
    result = run_main(capsys, command, model, "-o", out, "--size", "32", "--steps", "8", *at)
    one_line_error(result, str(unwritable))
    assert not out.exists() and "wrote" not in capsys.readouterr().out


@pytest.mark.slow  # video processes
@pytest.mark.parametrize("command", ["grow", "heal"])
@pytest.mark.parametrize("suffix", ["mp4", "gif"])
def test_a_video_cut_short_by_a_full_disk_is_an_error_and_the_old_one_stays(command, suffix, model, tmp_path):
    out = tmp_path / f"y.{suffix}"
    out.write_bytes(b"the video made yesterday")
    at = ["--at", "48"] if command == "heal" else []
    result = nca(command, model, "-o", out, "--size", "128", "--steps", "96", "--every", "1", *at, preexec_fn=small_files_only)
    one_line_error(result, str(out))
    assert "wrote" not in result.stdout and out.read_bytes() == b"the video made yesterday"
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]


def test_a_video_written_over_an_old_one_replaces_it_whole(model, tmp_path, capsys):
    out = tmp_path / "y.mp4"
    out.write_bytes(b"an older video")
    assert cli.main(["grow", str(model), "-o", str(out), "--size", "32", "--steps", "8"]) == 0
    assert capsys.readouterr().out.startswith(f"nca: wrote {out}")
    import imageio.v3 as iio

    assert len(list(iio.imiter(out))) == 3
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".nca-tmp")]
