"""A run that starts from a model's rule (`nca train IMAGE --from A`, `TrainConfig.start_from`): it keeps A's
architecture, starts from A's weights without changing what the seed draws, is refused in one line when A is missing
or the settings ask for another architecture, resumes from its checkpoint (not A), and its card names A as given."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from helpers import TINY, one_line_error, run_main, tiny_flags

from nca_gradio.card import model_card
from nca_gradio.loading import load_start
from nca_gradio.model import NCA, NCAConfig
from nca_gradio.model_folder import CONFIG_FILE, load_folder, save_model
from nca_gradio.run import TrainingRun
from nca_gradio.train import ConfigError, TrainConfig, Trainer
from nca_gradio.train_options import training_flags

FREE = {k: v for k, v in TINY.items() if k not in ("preset", "device")}  # the tiny run on a CPU, its architecture left to the start model


def round_seed_model(path: Path) -> Path:
    """A model folder of the seed preset's size with isotropic perception and non-zero weights, as if trained."""
    torch.manual_seed(3)
    model = NCA(NCAConfig(channels=4, hidden=8, perception="isotropic"))
    torch.nn.init.normal_(model.w2.weight, std=0.05)
    return save_model(model, path)


def flags_without_preset() -> list[str]:
    flags = tiny_flags()
    at = flags.index(training_flags()["preset"])
    return flags[:at] + flags[at + 2:]


@pytest.fixture(scope="module")
def start(tmp_path_factory) -> Path:
    return round_seed_model(tmp_path_factory.mktemp("start") / "A")


@pytest.mark.slow  # loads the start model several times: each load grows a probe grid
def test_a_run_from_a_model_takes_its_architecture(start):
    model = load_start(start)
    config = TrainConfig.for_device("cpu", model.config, start_from=str(start), **FREE)
    assert (config.preset, config.perception, config.fire_rate) == ("seed", "isotropic", 0.5)
    assert config.architecture == model.config
    with pytest.raises(ConfigError, match="keeps its architecture: pass it as start"):
        TrainConfig.for_device("cpu", start_from=str(start), **FREE)  # the settings cannot be made without it


@pytest.mark.slow  # two trainers and a training iteration
def test_training_starts_from_the_models_weights_and_draws_what_a_new_rule_draws(start, pebbles_64):
    blank = Trainer(pebbles_64, TrainConfig.for_device("cpu", preset="seed", perception="isotropic", iters=1, **FREE), log=lambda m: None)
    blank_rng = torch.get_rng_state()
    model = load_start(start)
    trainer = Trainer(pebbles_64, TrainConfig.for_device("cpu", model.config, start_from=str(start), iters=1, **FREE), log=lambda m: None,
                      start=model)
    assert torch.equal(torch.get_rng_state(), blank_rng)  # loading A drew nothing: a seed repeats its run
    weights = load_folder(start).state_dict()
    for name, value in trainer.model.state_dict().items():
        assert torch.equal(value, weights[name]), name
    assert torch.equal(trainer.generator.get_state(), blank.generator.get_state())
    assert torch.equal(trainer._last_good["model"]["w2.weight"], weights["w2.weight"])  # a rollback returns to A, not the identity
    trainer.train()
    moved = max(float((value - weights[name]).abs().max()) for name, value in trainer.model.state_dict().items())
    assert 0 < moved <= trainer.config.lr * 1.001  # one Adam step from A: at most lr per weight
    assert not torch.equal(trainer.model.w2.weight, blank.model.w2.weight)  # the identity's last layer is zero


@pytest.mark.slow  # loads the start model several times: each load grows a probe grid
def test_settings_built_for_another_architecture_are_refused_before_training(start, pebbles_64):
    model = load_start(start)
    with pytest.raises(ConfigError, match="keeps its architecture"):
        Trainer(pebbles_64, TrainConfig(**{**TINY, "start_from": str(start)}), log=lambda m: None, start=model)  # fast, sobel: not A's
    with pytest.raises(ConfigError, match="load it with loading.load_start and pass it as start"):
        Trainer(pebbles_64, TrainConfig.for_device("cpu", model.config, start_from=str(start), **FREE), log=lambda m: None)
    with pytest.raises(ConfigError, match="keeps that architecture: leave out fire_rate 0.7"):
        TrainConfig.for_device("cpu", model.config, start_from=str(start), fire_rate=0.7, **FREE)


def test_a_model_of_no_presets_size_is_refused_in_one_line(tmp_path, capsys):
    odd = save_model(NCA(NCAConfig(channels=5, hidden=8)), tmp_path / "odd")
    one_line_error(run_main(capsys, "train", "x.png", "-o", tmp_path / "out", "--from", odd), "5 channels and 8 hidden units",
                   "a preset's size")


@pytest.mark.slow  # loads the start model several times: each load grows a probe grid
def test_a_conflicting_preset_or_perception_is_refused_in_one_line_that_says_why(start, tmp_path, pebbles_path, capsys):
    out = tmp_path / "out"
    one_line_error(run_main(capsys, "train", pebbles_path, "-o", out, "--from", start, *tiny_flags()),
                   "seed rule with isotropic perception", "keeps that architecture", "leave out preset fast")
    one_line_error(run_main(capsys, "train", pebbles_path, "-o", out, "--from", start, "--perception", "sobel", *flags_without_preset()),
                   "leave out perception sobel")
    assert not (out / CONFIG_FILE).exists()


def test_a_missing_or_broken_start_model_is_refused_in_one_line(tmp_path, pebbles_path, capsys):
    out = tmp_path / "out"
    one_line_error(run_main(capsys, "train", pebbles_path, "-o", out, "--from", tmp_path / "nope", *flags_without_preset()),
                   "the model to start from", "no such model folder")
    broken = round_seed_model(tmp_path / "broken")
    (broken / CONFIG_FILE).write_text("{not json")
    one_line_error(run_main(capsys, "train", pebbles_path, "-o", out, "--from", broken, *flags_without_preset()),
                   "the model to start from", "not valid JSON")
    assert not out.exists()  # the refusal leaves no empty output folder behind
    out.mkdir()
    one_line_error(run_main(capsys, "train", pebbles_path, "-o", out, "--from", tmp_path / "nope", *flags_without_preset()),
                   "no such model folder")
    assert out.is_dir()  # a folder the user had stays


def test_train_many_refusing_its_start_model_leaves_no_empty_output_folder(tmp_path, pebbles_path, capsys):
    out = tmp_path / "many"
    one_line_error(run_main(capsys, "train-many", pebbles_path, "-o", out, "--from", tmp_path / "nope", *flags_without_preset()),
                   "the model to start from", "no such model folder")
    assert not out.exists()


@pytest.mark.slow  # loads the start model several times: each load grows a probe grid
def test_from_with_resume_or_onto_itself_is_refused_in_one_line(start, tmp_path, pebbles_path, capsys):
    one_line_error(run_main(capsys, "train", pebbles_path, "-o", tmp_path / "out", "--from", start, "--resume"), "leave out --from")
    copy = shutil.copytree(start, tmp_path / "copy")
    one_line_error(run_main(capsys, "train", pebbles_path, "-o", copy, "--from", copy, "--force"), "would replace the one it starts from")
    assert load_folder(copy).perception == "isotropic"


@pytest.mark.slow  # a training, saved and resumed
def test_a_resume_continues_the_checkpoint_not_the_start_model(start, tmp_path, pebbles_64):
    a = shutil.copytree(start, tmp_path / "A")
    config = TrainConfig.for_device("cpu", load_start(a).config, start_from=str(a), iters=2, **FREE)
    run = TrainingRun.open(tmp_path / "run", pebbles_64, config)  # loads A by its name
    run.run()
    saved = load_folder(tmp_path / "run").state_dict()
    assert not torch.equal(saved["w2.weight"], load_folder(a).w2.weight)
    shutil.rmtree(a)  # a resume needs the start model no more
    resumed = TrainingRun.open(tmp_path / "run", pebbles_64, config, resume=True, overrides={"iters": 3}).trainer
    assert resumed.iteration == 2 and resumed.config.start_from == str(a)
    for name, value in resumed.model.state_dict().items():
        assert torch.equal(value, saved[name]), name


@pytest.mark.slow  # a training with its card (the card grows the model 1,024 steps)
def test_the_cli_run_keeps_the_architecture_and_its_card_and_log_name_the_start_as_given(start, tmp_path, pebbles_path, capsys,
                                                                                          monkeypatch):
    shutil.copytree(start, tmp_path / "A")
    monkeypatch.chdir(tmp_path)
    code, err = run_main(capsys, "train", pebbles_path, "-o", "AB", "--from", "A", "--iters", "2", *flags_without_preset())
    assert code == 0, err
    assert "starting from the rule of A" in err
    config, before = json.loads((tmp_path / "AB" / CONFIG_FILE).read_text()), json.loads((tmp_path / "A" / CONFIG_FILE).read_text())
    assert {k: config[k] for k in ("channels", "hidden", "perception", "fire_rate")} == {k: before[k] for k in ("channels", "hidden",
                                                                                                              "perception", "fire_rate")}
    record = json.loads((tmp_path / "AB" / "training.json").read_text())
    assert record["config"]["start_from"] == "A" and record["config"]["preset"] == "seed"
    card = (tmp_path / "AB" / "README.md").read_text()
    assert card == model_card(tmp_path / "AB")
    assert "Fine-tuned from `A`" in card and "--from A " in card and str(tmp_path) not in card
