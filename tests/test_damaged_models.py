"""Damaged or hostile model folders are refused in one line that names the file: checkpoints cut short or edited,
weights that blow up, absurd config.json."""

import json
import shutil
from pathlib import Path

import pytest
import torch
from helpers import one_line_error, run_main
from safetensors.torch import load_file, save_file

from nca_gradio.model_folder import ModelLoadError, load_folder


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])


def _edit_json(**changes):
    def edit(path: Path) -> None:
        data = json.loads(path.read_text())
        for key, value in changes.items():
            if value is None:
                del data[key]
            else:
                data[key] = value
        path.write_text(json.dumps(data))
    return edit


def _drop_tensor(name: str):
    def edit(path: Path) -> None:
        tensors = load_file(str(path))
        if name.endswith("."):
            tensors = {k: v for k, v in tensors.items() if not (k.startswith(name) and k.endswith("exp_avg"))}
        else:
            del tensors[name]
        save_file(tensors, str(path))
    return edit


def _bad_generator(path: Path) -> None:
    tensors = load_file(str(path))
    tensors["generator"] = tensors["generator"][:10].clone()
    save_file(tensors, str(path))


DAMAGE = {
    "training.json empty": ("training.json", lambda p: p.write_text("")),
    "training.json truncated": ("training.json", _truncate),
    "training.json a list": ("training.json", lambda p: p.write_text("[]")),
    "training.json without config": ("training.json", _edit_json(config=None)),
    "training.json without iterations": ("training.json", _edit_json(iterations=None)),
    "training.json iterations text": ("training.json", _edit_json(iterations="many")),
    "training.json bad setting": ("training.json", lambda p: p.write_text(p.read_text().replace('"fast"', '"huge"'))),
    "state empty": ("training_state.safetensors", lambda p: p.write_bytes(b"")),
    "state truncated": ("training_state.safetensors", _truncate),
    "state without pool": ("training_state.safetensors", _drop_tensor("pool")),
    "state without generator": ("training_state.safetensors", _drop_tensor("generator")),
    "state with a broken generator": ("training_state.safetensors", _bad_generator),
    "state with half an optimizer": ("training_state.safetensors", _drop_tensor("adam.0.")),
    "weights truncated": ("model.safetensors", _truncate),
}


@pytest.mark.parametrize("case", list(DAMAGE))
def test_resume_from_a_damaged_checkpoint_names_the_file(case, model, tmp_path, pebbles_path, capsys, tiny_flags):
    folder = tmp_path / "model"
    shutil.copytree(model, folder)
    name, damage = DAMAGE[case]
    damage(folder / name)
    line = one_line_error(run_main(capsys, "train", pebbles_path, "-o", folder, "--resume", "--iters", "5", *tiny_flags()), name)
    assert "cannot be resumed" in line


def test_a_model_with_huge_weights_is_refused_when_loaded(model, tmp_path, capsys):
    folder = tmp_path / "huge"
    shutil.copytree(model, folder)
    weights = load_file(str(folder / "model.safetensors"))
    save_file({k: torch.full_like(v, 3e38) for k, v in weights.items()}, str(folder / "model.safetensors"))
    with pytest.raises(ModelLoadError, match="blow up to NaN or inf"):
        load_folder(folder)
    one_line_error(run_main(capsys, "grow", folder, "-o", tmp_path / "x.png", "--size", "32", "--steps", "8"), "blow up")


def _config_holding(text: str):
    def make(folder: Path) -> None:
        (folder / "config.json").write_text(text)
    return make


@pytest.mark.parametrize("text", ['{"channels": ' + "9" * 5000 + "}", "[" * 100_000 + "]" * 100_000],
                         ids=["5000-digit integer", "100k nested arrays"])
def test_absurd_config_json_is_a_one_line_error(text, model, tmp_path, capsys):
    folder = tmp_path / "model"
    shutil.copytree(model, folder)
    (folder / "config.json").write_text(text)
    one_line_error(run_main(capsys, "grow", folder, "-o", tmp_path / "x.png"), "config.json")
