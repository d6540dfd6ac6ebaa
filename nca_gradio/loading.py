"""Loading a saved NCA safely: validated config.json, safetensors only, shapes checked.

A model folder is untrusted input (it may come from the Hub), so nothing here
unpickles, and every failure is one `ModelLoadError` line that says what to do.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from .model import NCA, validate_architecture
from .render import PROBE_STEPS, grows_finite

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
CONFIG_KEYS = {"channels": int, "hidden": int, "fire_rate": (int, float), "perception": str}
# A key config.json leaves out takes the constructor's default, as `NCA(**config)` will.
ARCHITECTURE_DEFAULTS = {name: p.default for name, p in inspect.signature(NCA).parameters.items() if name in CONFIG_KEYS}
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".ckpt")


class ModelLoadError(ValueError):
    """A model that cannot be loaded, with a one-line reason."""


def read_config(path: Path) -> dict:
    """Parse and validate config.json: known keys only, right types, sane sizes."""
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"{path.name} is not valid JSON ({exc.__class__.__name__}); the model is damaged") from None
    except (ValueError, RecursionError):  # an integer of thousands of digits, arrays nested thousands deep
        raise ModelLoadError(f"{path.name} holds numbers or nesting far beyond any model's; it is not an nca-gradio config") from None
    if not isinstance(data, dict):
        raise ModelLoadError(f"{path.name} must hold a JSON object")
    unknown = sorted(set(data) - set(CONFIG_KEYS))
    if unknown:
        raise ModelLoadError(f"{path.name} has unknown keys: {', '.join(unknown)}; is this an nca-gradio model?")
    for key, kind in CONFIG_KEYS.items():
        if key in data and (isinstance(data[key], bool) or not isinstance(data[key], kind)):
            raise ModelLoadError(f"{path.name}: {key} has the wrong type ({type(data[key]).__name__})")
    try:
        validate_architecture(**{**ARCHITECTURE_DEFAULTS, **data})
    except ValueError as exc:
        raise ModelLoadError(f"{path.name}: {exc}") from None
    return data


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
    model = NCA(**read_config(config_path))
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


def load_model(
    ref: str | Path,
    device: str | torch.device = "cpu",
    revision: str | None = None,
    token: str | None = None,
    endpoint: str | None = None,
) -> NCA:
    """A model from a local folder or, when `ref` is no folder but reads `owner/name`, from that Hub repo.

    A folder wins over a repo of the same name. A pulled repo is checked exactly like a folder. When
    neither is found, the error says that both were looked for (a mistyped relative path reads `owner/name`).
    """
    if not isinstance(ref, str) or Path(ref).is_dir():
        return load_folder(ref, device)
    from .hub import HubError, is_repo_id, pull  # the Hub client is only needed for repo ids

    if not is_repo_id(ref):
        return load_folder(ref, device)
    try:
        folder = pull(ref, revision=revision, token=token, endpoint=endpoint)
    except HubError as exc:  # the user may have meant a folder and mistyped it: say both were looked for
        raise HubError(f"there is no folder {ref} here, and {exc}") from None
    try:
        return load_folder(folder, device)
    except ModelLoadError as exc:
        raise ModelLoadError(f"{ref}: {exc}") from None
