"""Recipes that follow the device, and a time budget that fits iterations and the lr schedule to the measured speed."""

import json
import subprocess
import sys
import time
from collections import Counter

import pytest
import torch

from nca_gradio.schedule import fitted_milestones
from nca_gradio.train import GPU_RECIPE, TrainConfig, Trainer, device_recipe, estimated_seconds
from nca_gradio.train_config import SHORT_BUDGET, SHORT_RECIPE
from nca_gradio.train_options import parse_duration


def test_a_cpu_keeps_the_defaults_and_a_gpu_gets_the_longer_wider_recipe():
    assert device_recipe(torch.device("cpu")) == {}
    assert TrainConfig.for_device("cpu") == TrainConfig(device="cpu")
    gpu = device_recipe(torch.device("cuda"))
    assert gpu == GPU_RECIPE and gpu["iters"] > TrainConfig().iters and gpu["batch"] > TrainConfig().batch
    assert "match_weight" not in device_recipe(torch.device("cuda"), "ot")  # matching is the patch loss's: ot refuses it


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_a_vgg_loss_trains_as_its_references_did(device):
    """Self-Organising Textures trained ot 5,000 iterations at lr 1e-3, DyNCA 2,000: not the patch loss's 500 at 2e-3."""
    recipe = device_recipe(torch.device(device), "ot")
    assert recipe["lr"] == 1e-3 and 2000 <= recipe["iters"] <= 5000 and recipe["time_budget"] == 0.0
    assert TrainConfig.for_device("cpu", loss="gram").lr == 1e-3


def test_the_users_own_choices_win_over_the_recipe():
    config = TrainConfig.for_device("cpu", iters=7, batch=2, time_budget=30.0)
    assert (config.iters, config.batch, config.time_budget) == (7, 2, 30.0)


def test_a_short_time_budget_on_a_cpu_gets_the_short_recipe():
    """`nca train PHOTO --time 60s` on a CPU: the defaults grow noise in a minute, the short recipe grows the photo's colours."""
    config = TrainConfig.for_device("cpu", time_budget=60.0)
    assert {name: getattr(config, name) for name in SHORT_RECIPE} == SHORT_RECIPE
    assert config.time_budget == 60.0 and config.iters == TrainConfig().iters
    assert TrainConfig.for_device("cpu", time_budget=SHORT_BUDGET).preset == SHORT_RECIPE["preset"]
    for longer in (0.0, SHORT_BUDGET + 1):  # no budget, or a longer one: the defaults
        assert TrainConfig.for_device("cpu", time_budget=longer) == TrainConfig(device="cpu", time_budget=longer)
    assert device_recipe(torch.device("cuda"), time_budget=60.0) == GPU_RECIPE  # a GPU keeps its own recipe
    assert TrainConfig.for_device("cpu", loss="ot", time_budget=60.0).preset == TrainConfig().preset  # VGG losses train as theirs


def test_explicit_options_win_over_the_short_recipe():
    config = TrainConfig.for_device("cpu", time_budget=60.0, preset="texture", size=64, lr=1e-3, steps_max=80)
    assert (config.preset, config.size, config.lr, config.steps_max) == ("texture", 64, 1e-3, 80)
    assert (config.steps_min, config.lr_decay_at) == (SHORT_RECIPE["steps_min"], SHORT_RECIPE["lr_decay_at"])  # the rest: the recipe


def test_the_command_line_leaves_preset_and_size_to_the_recipe():
    from nca_gradio.cli import build_parser
    from nca_gradio.train_options import config_from_args

    parse = lambda *extra: config_from_args(build_parser().parse_args(["train", "in.png", "-o", "out", "--device", "cpu", *extra]))
    assert (parse("--time", "60s").preset, parse("--time", "60s").size) == (SHORT_RECIPE["preset"], SHORT_RECIPE["size"])
    assert (parse("--time", "1m", "--preset", "texture", "--size", "64").preset, parse("--time", "60s", "--size", "48").size) == ("texture", 48)
    assert parse() == TrainConfig(device="cpu")


class SteadyClock:
    """time.perf_counter for a machine where every reading is `tick` seconds after the last: each iteration takes one tick."""

    def __init__(self, tick: float) -> None:
        self.now, self.tick = 0.0, tick

    def __call__(self) -> float:
        self.now += self.tick
        return self.now


@pytest.mark.slow
def test_a_time_budget_ends_the_run_on_time_with_its_lr_schedule_fitted(pebbles_64, monkeypatch, tiny_config):
    """On a steady clock (a shared machine's own speed varies tenfold from one iteration to the next)."""
    monkeypatch.setattr(time, "perf_counter", SteadyClock(0.05))
    budget = 3.0
    trainer = Trainer(pebbles_64[..., :32, :32], tiny_config(iters=100_000, time_budget=budget), log=lambda _: None)
    result = trainer.train()
    assert result.iteration == trainer.planned_iters and trainer.finished
    assert budget / 0.05 - 2 <= result.iteration <= budget / 0.05
    assert result.seconds <= budget + 0.05  # the plan leaves no iteration past the budget
    milestones = sorted(trainer.schedule.milestones.elements())
    assert milestones == pytest.approx([0.5 * result.iteration, 0.8 * result.iteration], abs=1)
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(trainer.config.lr * 0.3**2)  # both decays happened


@pytest.mark.slow
def test_a_resumed_budgeted_run_keeps_its_fitted_schedule(pebbles_64, tmp_path, monkeypatch, tiny_config):
    """A ZeroGPU chunk ends mid-run and the next one resumes it: the lr must stay where the fitted schedule put it."""
    monkeypatch.setattr(time, "perf_counter", SteadyClock(0.05))
    config = tiny_config(iters=100_000, time_budget=3.0)
    first = Trainer(pebbles_64[..., :32, :32], config, log=lambda _: None)
    first.train(should_stop=lambda: first.optimizer.param_groups[0]["lr"] < config.lr)  # just past the first decay
    first.save(tmp_path)
    resumed = Trainer.resume(tmp_path, pebbles_64[..., :32, :32], log=lambda _: None)
    assert resumed.schedule.milestones == first.schedule.milestones != Counter({50_000: 1, 80_000: 1})
    assert resumed.optimizer.param_groups[0]["lr"] == pytest.approx(first.optimizer.param_groups[0]["lr"])
    assert resumed.planned_iters == first.planned_iters < config.iters


def test_lr_milestones_follow_the_plan_and_never_fall_in_the_past():
    fractions = (0.5, 0.8)
    assert sorted(fitted_milestones(Counter([250, 400]), 10, fractions, 1000).elements()) == [500, 800]
    assert sorted(fitted_milestones(Counter([500, 800]), 600, fractions, 700).elements()) == [500, 601]  # shrunk past 0.8
    assert sorted(fitted_milestones(Counter([50, 80]), 60, fractions, 300).elements()) == [50, 240]  # the first is kept


def test_without_a_budget_the_run_is_exactly_its_iterations(pebbles_64, tiny_config):
    trainer = Trainer(pebbles_64[..., :32, :32], tiny_config(iters=12), log=lambda _: None)
    assert trainer.train().iteration == 12 and trainer.planned_iters == 12


@pytest.mark.parametrize(("text", "seconds"), [("90", 90.0), ("90s", 90.0), ("1.5m", 90.0), ("1h", 3600.0), (" 2M ", 120.0)])
def test_durations_read_as_a_user_writes_them(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.slow
def test_nca_train_time_stops_on_its_budget_and_bad_durations_are_one_line(tmp_path, pebbles_path, tiny_flags):
    out = tmp_path / "model"
    args = [sys.executable, "-m", "nca_gradio.cli", "train", str(pebbles_path), "-o", str(out),
            *tiny_flags(iters=100000)]
    done = subprocess.run([*args, "--time", "3s"], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    log = json.loads((out / "training.json").read_text())
    assert log["config"]["time_budget"] == 3.0 and 0 < log["iterations"] < 100_000
    assert "recipe for cpu" in done.stderr
    bad = subprocess.run([*args, "--time", "soon"], capture_output=True, text=True, timeout=60, check=False)
    assert bad.returncode == 2 and "'soon' is not a duration" in bad.stderr and "Traceback" not in bad.stderr


def test_the_expected_time_follows_the_work_and_a_time_budget_caps_it():
    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    default = estimated_seconds(TrainConfig(), cpu)
    assert 600 <= default <= 1200  # the CPU recipe: about 15 minutes on 2 idle cores
    assert estimated_seconds(TrainConfig(size=128), cpu) == pytest.approx(4 * default)
    assert estimated_seconds(TrainConfig(preset="fast"), cpu) < default
    assert estimated_seconds(TrainConfig(size=128), gpu) == estimated_seconds(TrainConfig(), gpu)  # launch-bound: size is free
    assert estimated_seconds(TrainConfig(time_budget=60.0), cpu) == 60.0


@pytest.mark.slow
def test_the_studio_stream_ends_when_the_time_budget_is_spent(pebbles_64, tmp_path, monkeypatch, tiny_config):
    from nca_gradio import studio

    monkeypatch.setattr(time, "perf_counter", SteadyClock(0.05))
    config = tiny_config(iters=100_000, time_budget=1.0)
    updates = list(studio.train_stream(tmp_path / "model", pebbles_64[..., :32, :32], config, tmp_path / "stop"))
    assert updates[-1].finished and not updates[-1].stopped and updates[-1].iteration == updates[-1].total < 100_000
    assert (tmp_path / "model" / "model.safetensors").exists()
