"""One training run for the CLI, the studio and train-many: checkpoints while training, one-unit checkpoints, resume overrides."""

import json
import random
import shutil
import subprocess
import sys
import time

import pytest
import torch
from helpers import env, nca

from nca_gradio import studio
from nca_gradio.checkpoint import Checkpoint
from nca_gradio.model_folder import CARD_FILE, TRAINING_LOG, TRAINING_STATE, WEIGHTS_FILE, load_folder
from nca_gradio.run import CHECKPOINT_ENV, TrainingRun
from nca_gradio.train import ConfigError, Trainer

pytestmark = pytest.mark.slow  # trainings, app launches or `nca` processes: the fast part leaves them out


def saved_iterations(folder) -> int:
    return json.loads((folder / TRAINING_LOG).read_text())["iterations"]


@pytest.mark.slow
def test_nca_train_killed_with_9_at_any_moment_leaves_a_model_that_grows_and_a_run_that_resumes(tmp_path, pebbles_path, tiny_flags):
    """kill -9 lands anywhere, mid-checkpoint included: checkpoints here come every 0.2 s."""
    folder, log = tmp_path / "model", tmp_path / "stderr"
    rng = random.Random(0)
    for round_ in range(3):
        resume = ["--resume"] if round_ else []
        with open(log, "w") as stderr:
            process = subprocess.Popen([sys.executable, "-m", "nca_gradio.cli", "train", pebbles_path, "-o", folder, "--iters", "100000",
                                        *resume, *tiny_flags()], stderr=stderr, stdout=subprocess.DEVNULL,
                                       env={**env(), CHECKPOINT_ENV: "0.2"})
            deadline = time.monotonic() + 90
            while "recipe for" not in log.read_text() and time.monotonic() < deadline:
                assert process.poll() is None, log.read_text()
                time.sleep(0.05)
            time.sleep(rng.uniform(0.2, 2.0))
            process.kill()
            process.wait()
        load_folder(folder)  # a model that loads (and so grows finite) is there at every moment
        assert saved_iterations(folder) >= 0
    done = Checkpoint.read(folder).info["iterations"]
    result = nca("train", pebbles_path, "-o", folder, "--resume", "--iters", str(done + 2), *tiny_flags())
    assert result.returncode == 0, result.stderr
    assert saved_iterations(folder) == done + 2


def test_every_run_checkpoints_while_it_trains_not_only_at_the_end(tmp_path, pebbles_64, tiny_config, monkeypatch):
    """The studio's stream, like the CLI and train-many, goes through TrainingRun: a checkpoint lands mid-run."""
    monkeypatch.setenv(CHECKPOINT_ENV, "0.3")
    folder, stop_file = tmp_path / "model", tmp_path / "STOP"
    seen_on_disk = []
    for update in studio.train_stream(folder, pebbles_64, tiny_config(iters=100_000), stop_file):
        seen_on_disk.append(saved_iterations(folder))
        if update.seconds > 2.5:
            stop_file.touch()
    assert len({n for n in seen_on_disk if n > 0}) >= 3  # saved again and again while training, not once at the end
    assert update.stopped and saved_iterations(folder) == update.iteration


def test_a_run_stopped_before_its_first_iteration_is_not_grown_to_be_judged(tmp_path, pebbles_64, tiny_config):
    """Nothing was learned: no card, no verdict, no 1,024-step growth (the studio says it never started)."""
    folder, stop_file = tmp_path / "model", tmp_path / "STOP"
    stop_file.touch()
    updates = list(studio.train_stream(folder, pebbles_64, tiny_config(iters=50), stop_file))
    assert updates[-1].stopped and updates[-1].iteration == 0 and updates[-1].verdict is None
    assert not (folder / CARD_FILE).exists()


def test_a_checkpoint_is_one_unit_so_a_kill_between_files_cannot_mix_two_iterations(tmp_path, pebbles_64, tiny_config):
    """A kill after the checkpoint's rename but before the model files and training.json: resume still reads one iteration."""
    trainer = Trainer(pebbles_64, tiny_config(iters=6), log=lambda m: None)
    trainer.train(should_stop=lambda: trainer.iteration >= 3)
    trainer.save(tmp_path / "at3", pebbles_64)
    trainer.train()
    trainer.save(tmp_path / "at6", pebbles_64)
    mixed = tmp_path / "mixed"
    shutil.copytree(tmp_path / "at3", mixed)
    shutil.copy(tmp_path / "at6" / TRAINING_STATE, mixed / TRAINING_STATE)  # only the first file of the save at 6 landed
    resumed = Trainer.resume(mixed, pebbles_64, log=lambda m: None)
    assert resumed.iteration == 6 and len(resumed.history) == 6
    for p, q in zip(resumed.model.parameters(), trainer.model.parameters()):
        assert torch.equal(p, q)
    assert torch.equal(resumed.pool, trainer.pool)


def test_a_checkpoint_from_before_the_record_moved_into_it_still_resumes(tmp_path, pebbles_64, tiny_config):
    """Old folders: the record in training.json and the weights in model.safetensors only."""
    from safetensors.torch import load_file, save_file

    trainer = Trainer(pebbles_64, tiny_config(iters=4), log=lambda m: None)
    trainer.train(should_stop=lambda: trainer.iteration >= 2)
    trainer.save(tmp_path, pebbles_64)
    old = {k: v for k, v in load_file(str(tmp_path / TRAINING_STATE)).items() if not k.startswith("model.")}
    save_file(old, str(tmp_path / TRAINING_STATE))  # no metadata, no weights: as written before
    resumed = Trainer.resume(tmp_path, pebbles_64, log=lambda m: None)
    assert resumed.iteration == 2
    assert all(torch.equal(p, q) for p, q in zip(resumed.model.parameters(), load_folder(tmp_path).parameters()))


def test_resume_applies_a_new_lr_and_iters_and_starts_the_nan_count_again(tmp_path, pebbles_64, tiny_config):
    trainer = Trainer(pebbles_64, tiny_config(iters=10), log=lambda m: None)
    trainer.train(should_stop=lambda: trainer.iteration >= 2)
    trainer.rollbacks = 20  # one more NaN would have aborted it
    trainer.save(tmp_path, pebbles_64)
    resumed = Trainer.resume(tmp_path, pebbles_64, {"lr": 5e-4, "iters": 40, "time_budget": 30.0}, log=lambda m: None)
    assert resumed.rollbacks == 0
    assert resumed.config.lr == 5e-4 and resumed.optimizer.param_groups[0]["lr"] == pytest.approx(5e-4)
    assert resumed.planned_iters == 40  # iters is the run's total
    assert resumed.config.time_budget == pytest.approx(trainer.seconds + 30.0, abs=0.01)  # a time limit counts from the resume


def test_resume_refuses_in_one_line_what_a_resumed_run_cannot_change(tmp_path, pebbles_64, tiny_config):
    trainer = Trainer(pebbles_64, tiny_config(iters=2), log=lambda m: None)
    trainer.train()
    trainer.save(tmp_path, pebbles_64)
    with pytest.raises(ConfigError, match="keeps its size") as refused:
        Trainer.resume(tmp_path, pebbles_64, {"size": 64}, log=lambda m: None)
    assert "\n" not in str(refused.value)
    with pytest.raises(ConfigError, match="lr must be between"):
        Trainer.resume(tmp_path, pebbles_64, {"lr": 50.0}, log=lambda m: None)


def test_a_fresh_run_has_a_model_and_a_checkpoint_before_its_first_iteration(tmp_path, pebbles_64, tiny_config):
    run = TrainingRun.open(tmp_path / "model", pebbles_64, tiny_config(iters=3))
    assert run.trainer.iteration == 0 and (tmp_path / "model" / WEIGHTS_FILE).is_file()
    assert Checkpoint.read(tmp_path / "model").info["iterations"] == 0


def test_nca_train_resume_with_a_new_lr_uses_it(tmp_path, pebbles_path, tiny_flags):
    folder = tmp_path / "model"
    assert nca("train", pebbles_path, "-o", folder, "--iters", "2", *tiny_flags()).returncode == 0
    result = nca("train", pebbles_path, "-o", folder, "--resume", "--iters", "3", "--lr", "0.0005", *tiny_flags())
    assert result.returncode == 0, result.stderr
    assert json.loads((folder / TRAINING_LOG).read_text())["config"]["lr"] == 0.0005


def test_a_bad_checkpoint_cadence_is_one_line(tmp_path, pebbles_path, tiny_flags):
    result = subprocess.run([sys.executable, "-m", "nca_gradio.cli", "train", str(pebbles_path), "-o", str(tmp_path / "m"), "--iters", "1",
                             *tiny_flags()], check=False, capture_output=True, text=True, env={**env(), CHECKPOINT_ENV: "soon"}, timeout=120)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and CHECKPOINT_ENV in result.stderr, result.stderr


def test_a_run_that_checkpoints_trains_the_same_numbers_as_one_that_does_not(tmp_path, pebbles_64, tiny_config):
    """Checkpoints now come every minute of every run: a save must not draw from the generators the run draws from."""
    straight = Trainer(pebbles_64, tiny_config(iters=6), log=lambda m: None)
    straight.train()
    saving = Trainer(pebbles_64, tiny_config(iters=6), log=lambda m: None)
    for _ in range(3):
        saving.train(should_stop=lambda n=saving.iteration + 2: saving.iteration >= n)
        saving.save(tmp_path, pebbles_64)
    assert saving.iteration == 6
    for p, q in zip(straight.model.parameters(), saving.model.parameters()):
        assert torch.equal(p, q)
