"""Helpers the test modules share (test modules never import each other): the tiny training run, tiny model folders.

TINY is the one small training run the tests use where its numbers do not matter; a test that needs other numbers
passes them as changes. Size 32 with a pool of 4 `fast` grids keeps training_state.safetensors above 100 kB, which the
full-disk test relies on.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save

from nca_gradio.model import NCA, NCAConfig
from nca_gradio.model_folder import save_model
from nca_gradio.render import save_animation
from nca_gradio.train import TrainConfig
from nca_gradio.train_options import training_flags

TINY = {"preset": "fast", "loss": "patch", "size": 32, "target_size": 64, "batch": 2, "pool_size": 4, "steps_min": 8, "steps_max": 16,
        "device": "cpu"}


def tiny_config(**changes) -> TrainConfig:
    """The tiny run, with `changes` to its fields."""
    return TrainConfig(**{**TINY, **changes})


def tiny_flags(**changes) -> list[str]:
    """The same run as `nca train` flags (steps_min and steps_max have none: a CLI run rolls out the recipe's)."""
    tiny_config(**changes)  # a bad change fails here, as a TrainConfig, not later as a usage error
    flags = training_flags()
    spelled = []
    for name, value in {**TINY, **changes}.items():
        if name in flags and value is True:
            spelled.append(flags[name])
        elif name in flags and value is not False:
            spelled += [flags[name], str(value)]
    return spelled


def tiny_model(seed: int = 0) -> NCA:
    """A 168-parameter model with non-zero weights, as if trained."""
    torch.manual_seed(seed)
    model = NCA(NCAConfig(channels=4, hidden=8))
    torch.nn.init.normal_(model.w2.weight, std=0.05)
    return model


def model_folder(path: Path, seed: int = 0, preview: bool = True) -> Path:
    """A saved model; with a ready preview.gif (so pushing it grows nothing) and no target.png."""
    save_model(tiny_model(seed), path)
    if preview:
        frames = [np.full((16, 16, 3), 40 * i, dtype=np.uint8) for i in range(3)]
        save_animation(frames, path / "preview.gif", fps=10)
    return path


def weights_bytes(seed: int = 0) -> tuple[bytes, bytes]:
    """config.json and model.safetensors of a tiny model, as bytes for seeding a repo directly."""
    model = tiny_model(seed)
    config = {"channels": model.channels, "hidden": model.hidden, "fire_rate": model.fire_rate}
    return json.dumps(config).encode(), save(model.state_dict(), metadata={"format": "pt"})
