"""The `nca` command end to end, as a user runs it: real processes, real files."""

import json
import subprocess
import sys

import imageio.v3 as iio
import pytest
from helpers import one_line_error, run_main
from PIL import Image

pytestmark = pytest.mark.slow  # trainings, app launches or `nca` processes: the fast part leaves them out


def nca(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "nca_gradio.cli", *map(str, args)],
        capture_output=True, text=True, timeout=300, env=_env(), check=False,
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


def _env() -> dict:
    import os

    return {**os.environ, "HF_ENDPOINT": "http://127.0.0.1:9", "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def trained(tmp_path_factory, pebbles_path):
    out = tmp_path_factory.mktemp("model")
    result = nca("train", pebbles_path, "-o", out, "--preset", "fast", "--iters", "6", "--size", "32",
                 "--target-size", "64", "--batch", "2", "--seed", "1")
    assert "patch" in result.stderr  # auto says which loss it chose
    return out


def test_train_writes_a_loadable_model_and_its_log(trained):
    for name in ("config.json", "model.safetensors", "training.json", "target.png", "training_state.safetensors", "preview.gif"):
        assert (trained / name).exists(), name
    log = json.loads((trained / "training.json").read_text())
    assert log["iterations"] == 6 and log["loss"] == "patch" and log["config"]["preset"] == "fast"
    card = (trained / "README.md").read_text()  # ours, with the recipe, not save_pretrained's generic card
    assert "| iterations | 6 |" in card and "--iters 6" in card and "PytorchModelHubMixin" not in card


def test_resume_continues_to_more_iterations(trained, pebbles_path, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(trained, copy)
    result = nca("train", pebbles_path, "-o", copy, "--preset", "fast", "--iters", "8", "--size", "32", "--target-size",
                 "64", "--batch", "2", "--seed", "1", "--resume", "--compile")
    assert json.loads((copy / "training.json").read_text())["iterations"] == 8
    import torch

    said = "compiling the rollout for this GPU" if torch.cuda.is_available() else "--compile speeds up CUDA GPUs only"
    assert said in result.stderr
    assert "| iterations | 8 |" in (copy / "README.md").read_text()  # the card follows the resumed run


def test_train_isotropic_with_matching_and_damage_and_its_card_says_how_to_train_it_again(pebbles_path, tmp_path):
    from nca_gradio.card import model_card

    nca("train", pebbles_path, "-o", tmp_path, "--preset", "seed", "--perception", "isotropic", "--match", "0.05", "--damage-every", "3", "--iters", "1",
        "--size", "16", "--target-size", "64", "--batch", "1", "--pool-size", "2", "--precision", "float32")
    assert json.loads((tmp_path / "config.json").read_text())["perception"] == "isotropic"
    settings = json.loads((tmp_path / "training.json").read_text())["config"]
    assert (settings["perception"], settings["match_weight"], settings["damage_every"]) == ("isotropic", 0.05, 3)
    card = (tmp_path / "README.md").read_text()
    assert card == model_card(tmp_path)
    assert "--perception isotropic" in card and "no sense of direction" in card
    assert "--match 0.05" in card and "| patch matching | 0.05 |" in card
    assert "--damage-every 3" in card
    assert "--precision float32" in card and "| precision | float32 |" in card
    refused = nca("train", pebbles_path, "-o", tmp_path / "x", "--perception", "radial", check=False)
    assert refused.returncode == 2 and "invalid choice: 'radial'" in refused.stderr and "Traceback" not in refused.stderr


def test_train_and_train_many_read_the_same_training_options_into_the_same_config():
    from dataclasses import fields

    from nca_gradio.cli import build_parser
    from nca_gradio.train import TrainConfig
    from nca_gradio.train_options import config_from_args, training_flags

    assert set(training_flags()) <= {f.name for f in fields(TrainConfig)}  # each option's dest is the field it sets
    options = ["--match", "0.02", "--time", "2m", "--pool-size", "32", "--grad-checkpoint", "--device", "cpu", "--seed", "5",
               "--fire-rate", "0.25"]
    parser = build_parser()
    one = config_from_args(parser.parse_args(["train", "x.png", "-o", "out", *options]))
    many = config_from_args(parser.parse_args(["train-many", "x.png", "-o", "out", *options]))
    assert one == many
    assert (one.match_weight, one.time_budget, one.pool_size, one.grad_checkpoint, one.seed) == (0.02, 120.0, 32, True, 5)
    assert one.architecture.fire_rate == 0.25  # the rule it trains fires at that rate


def test_a_fire_rate_outside_zero_to_one_is_refused_in_one_line_before_any_work(tmp_path, pebbles_path, capsys):
    out = tmp_path / "out"
    one_line_error(run_main(capsys, "train", pebbles_path, "-o", out, "--fire-rate", "1.5"), "--fire-rate must be", "(0, 1]", "1.5")
    assert not out.exists()


@pytest.mark.parametrize("suffix", ["gif", "mp4", "png"])
def test_grow_writes_each_format(trained, tmp_path, suffix):
    out = tmp_path / f"grown.{suffix}"
    nca("grow", trained, "-o", out, "--size", "48", "--steps", "12", "--every", "4")
    if suffix == "png":
        assert Image.open(out).size == (48, 48)
    else:
        frames = list(iio.imiter(out))
        assert len(frames) == 4 and frames[0].shape[:2] == (48, 48)


def test_grow_precisions_give_the_same_canvas_size_and_refuse_unknown_ones(trained, tmp_path):
    for precision in ("float32", "bfloat16"):
        out = tmp_path / f"{precision}.png"
        nca("grow", trained, "-o", out, "--size", "32", "--steps", "8", "--precision", precision)
        assert Image.open(out).size == (32, 32)
    bad = nca("grow", trained, "-o", tmp_path / "x.png", "--precision", "half", check=False)
    assert bad.returncode == 2 and "invalid choice: 'half'" in bad.stderr


def test_threads_option(trained, tmp_path):
    nca("--threads", "1", "grow", trained, "-o", tmp_path / "one.png", "--size", "32", "--steps", "4")
    assert (tmp_path / "one.png").exists()
    bad = nca("--threads", "0", "grow", trained, "-o", tmp_path / "x.png", check=False)
    assert bad.returncode == 2 and bad.stderr.strip() == "nca: error: --threads must be at least 1, got 0"


def test_regenerate_writes_an_animation(trained, tmp_path):
    out = tmp_path / "heal.gif"
    nca("heal", trained, "-o", out, "--size", "40", "--steps", "16", "--at", "8", "--every", "2", "--damage", "stripe")
    assert iio.imread(out).shape == (9, 40, 40, 3)


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "missing.png", "-o", "x"], "no such file"),
        (["train", "{corrupt}", "-o", "x"], "not an image"),
        (["train", "{pebbles}", "-o", "x", "--iters", "0"], "error: --iters must be between"),
        (["train", "{pebbles}", "-o", "x", "--loss", "ot", "--match", "0.02"], "error: --match is part of the patch loss"),
        (["train", "{pebbles}", "-o", "x", "--loss", "gram"], "--loss patch"),
        (["grow", "{missing_dir}", "-o", "out.gif"], "no such model folder"),
        (["grow", "{model}", "-o", "out.jpg"], "must end in"),
        (["grow", "{model}", "-o", "{tmp}/out.png", "--size", "5"], "size must be"),
        (["regenerate", "{model}", "-o", "{tmp}/o.gif", "--at", "50", "--steps", "20"], "--at (50)"),
        (["grow", "{notmodel}", "-o", "{tmp}/o.gif"], "no model.safetensors"),
    ],
)
def test_bad_input_exits_2_with_one_line(args, message, tmp_path, trained, pebbles_path):
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"garbage" * 10)
    notmodel = tmp_path / "empty"
    notmodel.mkdir()
    values = {"corrupt": corrupt, "pebbles": pebbles_path, "model": trained, "tmp": tmp_path,
              "missing_dir": tmp_path / "nothing", "notmodel": notmodel}
    result = nca(*[a.format(**values) for a in args], check=False)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nca: error:"), result.stderr
    assert message in lines[0]
    assert "Traceback" not in result.stderr


def test_score_prints_the_parts_and_json(trained, tmp_path, pebbles_path):
    grown = tmp_path / "grown.png"
    nca("grow", trained, "-o", grown, "--size", "64", "--steps", "8")
    text = nca("score", grown, trained / "target.png").stdout
    assert "combined" in text and "colour" in text and "spectrum" in text
    figures = json.loads(nca("score", pebbles_path, pebbles_path, "--json").stdout)
    assert set(figures) == {"combined", "patches", "colour", "spectrum", "per_scale", "shape"}
    assert figures["combined"] < 1.5  # an image is about as close to itself as its halves are to each other
