"""Damaged or hostile model folders are refused in one line that names the file: checkpoints cut short or edited,
weights that blow up, absurd config.json."""

import json
import shutil
from pathlib import Path

import pytest
import torch
from helpers import one_line_error, run_main
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from nca_gradio.checkpoint import RECORD_KEY
from nca_gradio.model_folder import ModelLoadError, load_folder


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])


def _rewrite_state(path: Path, tensors_change=lambda tensors: tensors, record_change=lambda text: text) -> None:
    """Rewrite the checkpoint: its tensors, and the run's record it carries in its metadata (`checkpoint.RECORD_KEY`)."""
    with safe_open(str(path), framework="pt") as file:
        metadata = file.metadata()
        tensors = {key: file.get_tensor(key) for key in file.keys()}  # noqa: SIM118 - safe_open has no iteration
    save_file(tensors_change(tensors), str(path), metadata={**metadata, RECORD_KEY: record_change(metadata[RECORD_KEY])})


def _edit_record(change):
    return lambda path: _rewrite_state(path, record_change=change)


def _edit_json(**changes):
    def change(text: str) -> str:
        data = json.loads(text)
        for key, value in changes.items():
            if value is None:
                del data[key]
            else:
                data[key] = value
        return json.dumps(data)
    return _edit_record(change)


def _drop_tensor(name: str):
    def change(tensors: dict) -> dict:
        if name.endswith("."):
            return {k: v for k, v in tensors.items() if not (k.startswith(name) and k.endswith("exp_avg"))}
        return {k: v for k, v in tensors.items() if k != name}
    return lambda path: _rewrite_state(path, tensors_change=change)


def _bad_generator(path: Path) -> None:
    _rewrite_state(path, tensors_change=lambda tensors: {**tensors, "generator": tensors["generator"][:10].clone()})


DAMAGE = {
    "record empty": ("training_state.safetensors", _edit_record(lambda text: "")),
    "record truncated": ("training_state.safetensors", _edit_record(lambda text: text[: len(text) // 2])),
    "record a list": ("training_state.safetensors", _edit_record(lambda text: "[]")),
    "record without config": ("training_state.safetensors", _edit_json(config=None)),
    "record without iterations": ("training_state.safetensors", _edit_json(iterations=None)),
    "record iterations text": ("training_state.safetensors", _edit_json(iterations="many")),
    "record bad setting": ("training_state.safetensors", _edit_record(lambda text: text.replace('"fast"', '"huge"'))),
    "state empty": ("training_state.safetensors", lambda p: p.write_bytes(b"")),
    "state truncated": ("training_state.safetensors", _truncate),
    "state without pool": ("training_state.safetensors", _drop_tensor("pool")),
    "state without generator": ("training_state.safetensors", _drop_tensor("generator")),
    "state with a broken generator": ("training_state.safetensors", _bad_generator),
    "state with half an optimizer": ("training_state.safetensors", _drop_tensor("adam.0.")),
    "state without weights": ("training_state.safetensors", _drop_tensor("model.w2.weight")),
}


@pytest.mark.parametrize("case", list(DAMAGE))
def test_resume_from_a_damaged_checkpoint_names_the_file(case, model, tmp_path, pebbles_path, capsys, tiny_flags):
    folder = tmp_path / "model"
    shutil.copytree(model, folder)
    name, damage = DAMAGE[case]
    damage(folder / name)
    line = one_line_error(run_main(capsys, "train", pebbles_path, "-o", folder, "--resume", "--iters", "5", *tiny_flags()), name)
    assert "cannot be resumed" in line


@pytest.mark.parametrize("name", ["training.json", "model.safetensors", "config.json"])
@pytest.mark.slow
def test_a_damaged_file_beside_a_good_checkpoint_does_not_stop_a_resume(name, model, tmp_path, pebbles_path, capsys, tiny_flags):
    """The checkpoint is one unit: the files beside it are for people and the card, and the resume writes them anew."""
    folder = tmp_path / "model"
    shutil.copytree(model, folder)
    _truncate(folder / name)
    code, stderr = run_main(capsys, "train", pebbles_path, "-o", folder, "--resume", "--iters", "4", *tiny_flags())
    assert code == 0, stderr
    assert json.loads((folder / "training.json").read_text())["iterations"] == 4 and load_folder(folder)


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
