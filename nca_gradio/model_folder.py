"""A model folder: the names of its files, and reading and writing them.

A folder holds one model (config.json and model.safetensors) and what came
with it: the target, the training log and resume state, quality figures, the
card, a preview and the live page. It is untrusted input (it may come from the
Hub), so nothing here unpickles, and every failure to read one is a one-line
`ModelLoadError` that says what to do (a checkpoint's: `checkpoint.CheckpointError`). Every write replaces
its file whole (`atomic`).
"""

from __future__ import annotations

import json
import re
from dataclasses import fields
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from safetensors.torch import save_model as save_safetensors_model

from . import atomic
from .errors import UserError
from .model import NCA, NCAConfig
from .render import PROBE_STEPS, grows_finite

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
CARD_FILE = "README.md"
PREVIEW_FILE = "preview.gif"
TARGET_FILE = "target.png"
TRAINING_LOG = "training.json"
TRAINING_STATE = "training_state.safetensors"
QUALITY_FILE = "quality.json"  # `quality.ModelFigures.as_dict()`, written by models/build.py
LIVE_FILE = "live.html"  # the self-contained page that grows the model in a browser (`live.page_html`)
RECORD_FILE = "train_many.json"  # `nca train-many`'s summary row, so a rerun that skips the folder still reports it
HEALING_FILE = "regenerate.gif"  # a bundled model's damage-and-heal animation (models/build.py)
REQUIRED_FILES = (CONFIG_FILE, WEIGHTS_FILE)
SHARED_FILES = (CARD_FILE, PREVIEW_FILE, TARGET_FILE, TRAINING_LOG, QUALITY_FILE)  # what a push shares besides the model
MODEL_FILES = (*REQUIRED_FILES, *SHARED_FILES, TRAINING_STATE, LIVE_FILE, RECORD_FILE, HEALING_FILE)  # all a model's own
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".ckpt")


class ModelLoadError(UserError, ValueError):
    """A model that cannot be loaded, with a one-line reason."""


# ------------------------------------------------------------------ the model


def is_model_folder(folder: Path) -> bool:
    """Whether `folder` has a model's two files (it may still fail to load)."""
    return all((folder / name).is_file() for name in REQUIRED_FILES)


def read_config(path: Path) -> NCAConfig:
    """Parse config.json: known keys only, each checked by `NCAConfig`; a missing key takes its default."""
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"{path.name} is not valid JSON ({exc.__class__.__name__}); the model is damaged") from None
    except (ValueError, RecursionError):  # an integer of thousands of digits, arrays nested thousands deep
        raise ModelLoadError(f"{path.name} holds numbers or nesting far beyond any model's; it is not an nca-gradio config") from None
    if not isinstance(data, dict):
        raise ModelLoadError(f"{path.name} must hold a JSON object")
    unknown = sorted(set(data) - {f.name for f in fields(NCAConfig)})
    if unknown:
        raise ModelLoadError(f"{path.name} has unknown keys: {', '.join(unknown)}; is this an nca-gradio model?")
    try:
        return NCAConfig(**data)
    except ValueError as exc:
        raise ModelLoadError(f"{path.name}: {exc}") from None


def load_folder(folder: str | Path, device: str | torch.device = "cpu") -> NCA:
    """Build the model a folder describes and load its weights, after checking both."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelLoadError(f"{folder}: no such model folder")
    config_path, weights_path = folder / CONFIG_FILE, folder / WEIGHTS_FILE
    if not weights_path.exists():
        pickles = [p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES]
        if pickles:
            raise ModelLoadError(f"{folder} has only pickle weights ({', '.join(pickles)}), which are unsafe to load; use model.safetensors")
        raise ModelLoadError(f"{folder} has no {WEIGHTS_FILE}; is it a model folder?")
    if not config_path.exists():
        raise ModelLoadError(f"{folder} has no {CONFIG_FILE}; is it a model folder?")
    for path in (config_path, weights_path):
        if not path.is_file():  # a pipe would block the read forever
            raise ModelLoadError(f"{path} is not a regular file; is {folder} a model folder?")
    model = NCA(read_config(config_path))
    try:
        weights = load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelLoadError(f"{weights_path.name} is damaged ({exc}); download the model again") from None
    expected = model.state_dict()
    if set(weights) != set(expected):
        raise ModelLoadError(f"{weights_path.name} holds {sorted(weights)}, expected {sorted(expected)}")
    for name, tensor in weights.items():
        if tensor.shape != expected[name].shape:
            raise ModelLoadError(
                f"{weights_path.name}: {name} has shape {tuple(tensor.shape)} but config.json asks for {tuple(expected[name].shape)}"
            )
        if not torch.isfinite(tensor).all():
            raise ModelLoadError(f"{weights_path.name}: {name} holds NaN or inf values")
    model.load_state_dict(weights)
    if not grows_finite(model):
        raise ModelLoadError(
            f"{folder}: the model's cells blow up to NaN or inf within {PROBE_STEPS} steps, so it grows only a black texture; "
            f"train it again (with a lower --lr)"
        )
    return model.to(device).eval()


def clear_model_files(folder: str | Path) -> None:
    """Remove the files an earlier model left in `folder` (`nca train --force`), so that none of them (its
    quality.json, preview, resume state) is later shared as the new model's; the user's other files stay."""
    for name in MODEL_FILES:
        try:
            (Path(folder) / name).unlink(missing_ok=True)
        except OSError as exc:
            raise atomic.SaveError(f"cannot remove the old {name} from {folder} ({exc.strerror or exc}): remove it, or choose another folder") from None


def save_model(model: NCA, folder: str | Path) -> Path:
    """Make the folder if need be and write the model into it (`write_model`)."""
    folder = atomic.prepare_folder(folder)
    write_model(model, folder)
    return folder


def write_model(model: NCA, folder: Path) -> None:
    """Write config.json and model.safetensors into a prepared folder, each replaced whole: never half a model."""
    with atomic.scratch_folder(folder, write_errors=(SafetensorError,)) as scratch:
        (scratch / CONFIG_FILE).write_text(json.dumps(model.config.to_dict(), sort_keys=True, indent=2))
        save_safetensors_model(model, str(scratch / WEIGHTS_FILE))
        atomic.replace_files(scratch, folder, list(REQUIRED_FILES))


def write_target(folder: Path, target: torch.Tensor) -> None:
    """The target image the model was trained on, as the card shows and `nca score` compares."""
    from .images import tensor_to_image

    with atomic.replacing(folder / TARGET_FILE) as temp:
        tensor_to_image(target).save(temp, format="PNG")


def slug(text: str) -> str:
    """A file-name-safe version of a label: a folder or download name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "model"


# ------------------------------------------------------------------ records beside the model


def read_json(folder: Path, name: str) -> dict | None:
    """One of the folder's JSON records as a dict, or None when it is missing or unreadable (it is only shown)."""
    try:
        data = json.loads((folder / name).read_text())
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def write_json(folder: Path, name: str, data: dict) -> None:
    atomic.write_text(folder / name, json.dumps(data, indent=1))


def read_training_log(folder: Path) -> dict | None:
    """training.json as the trainer wrote it, or None when it is missing or unreadable (it is only shown)."""
    info = read_json(folder, TRAINING_LOG)
    return info if info is not None and isinstance(info.get("config", {}), dict) else None


BUNDLED_LABEL, HUB_LABEL = "{} (bundled)", "{} (Hub)"  # how the studio's model lists name bundled and pulled models
STUDIO_TRAINED_MARK = " · "  # in the label of a model the studio trained ("pebbles · fast · 300 it")


def start_reference(name: str) -> str | None:
    """What `nca train --from` takes for the model a run started from (`TrainConfig.start_from`).

    The studio records its list's label: a bundled model's becomes its folder in a checkout (models/NAME), a pulled
    one's its Hub repo id; a folder or repo id given to `nca train` stays as it is. A model the studio trained has no
    name outside the session: None.
    """
    for label, reference in ((BUNDLED_LABEL, "models/{}"), (HUB_LABEL, "{}")):
        prefix, suffix = label.split("{}")
        if name.endswith(suffix) and name.startswith(prefix) and len(name) > len(suffix):
            return reference.format(name[len(prefix): len(name) - len(suffix)])
    return None if STUDIO_TRAINED_MARK in name else name

