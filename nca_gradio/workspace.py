"""One browser session's workspace: its models, its files, the texture it grew last, and a model zipped for download.

The studio keeps a `Workspace` in a `gr.State`, so sessions never see each other's models or files.
Nothing here imports gradio.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .atomic import replacing
from .card import shared_files
from .graft import GraftWith
from .model_folder import BUNDLED_LABEL, is_model_folder
from .verdict import Verdict


@dataclass
class Grown:
    """The last texture grown in a session: the Heal tab damages and heals this grid."""

    model: str
    folder: Path
    state: torch.Tensor  # the full cell grid (1, C, H, W) on the CPU
    frame: np.ndarray  # what it looks like, H x W x 3 uint8
    seed: int = 0
    steps: int = 0  # how long it was grown: the Heal tab counts its steps on from here
    graft: GraftWith | None = None  # the second rule it was grafted with, which heals it too


@dataclass
class Workspace:
    """One browser session's models and files. It lives in a `gr.State`, so sessions never see each other's models."""

    models: dict[str, Path] = field(default_factory=dict)
    grown: Grown | None = None
    latest: str | None = None  # the model trained or pulled last: the one the model lists select
    root: Path | None = None
    count: int = 0
    last_used: float = field(default_factory=time.monotonic)

    def touch(self) -> None:
        """Mark the workspace as in use now (`sweep_idle` spares it)."""
        self.last_used = time.monotonic()
    training: bool = False  # a run is on: Stop has something to stop

    @property
    def folder(self) -> Path:
        """The session's own temporary folder, made on first use."""
        self.touch()
        if self.root is None:
            self.root = Path(tempfile.mkdtemp(prefix="nca-studio-"))
        return self.root

    def path(self, name: str) -> Path:
        """A fresh path called `name` in the session's own folder.

        Each path gets a numbered folder of its own, so the file keeps its clean name: a download is called `name`.
        """
        self.count += 1
        folder = self.folder / f"{self.count:03d}"
        folder.mkdir()
        return folder / name

    def add_model(self, name: str, folder: Path) -> str:
        """Register a model under a label not used yet in this session; returns the label.

        A folder registered before (the same Hub repo pulled twice) keeps its label.
        """
        label = next((known for known, path in self.models.items() if path == Path(folder)), None)
        if label is None:
            label, n = name, 1
            while label in self.models:
                n += 1
                label = f"{name} #{n}"
            self.models[label] = Path(folder)
        self.latest = label
        return label

    @property
    def stop_file(self) -> Path:
        """A file, not a flag in memory, so that a training chunk in another process (ZeroGPU) sees it too."""
        return self.folder / "STOP"

    @property
    def hub_cache(self) -> Path:
        """This session's own Hub cache: a private model pulled with a token serves only the session that pulled it."""
        return self.folder / "hub-cache"

    def request_stop(self) -> None:
        self.stop_file.touch()

    def clear_stop(self) -> None:
        self.stop_file.unlink(missing_ok=True)

    def close(self) -> None:
        """Delete the session's files and forget its models (Gradio dropped the state, or it lay idle too long)."""
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
        self.root, self.models, self.grown, self.latest = None, {}, None, None


IDLE_ENV = "NCA_WORKSPACE_IDLE_SECONDS"
IDLE_SECONDS = 6 * 3600.0  # a session unused this long loses its files; a page closed loses them after Gradio's hour


def idle_limit() -> float:
    """How long a workspace may lie unused before `sweep_idle` deletes it: NCA_WORKSPACE_IDLE_SECONDS, else 6 hours."""
    try:
        seconds = float(os.environ.get(IDLE_ENV, IDLE_SECONDS))
    except ValueError:
        return IDLE_SECONDS
    return seconds if seconds > 0 else IDLE_SECONDS


def sweep_idle(workspaces: Iterable[Workspace], idle_seconds: float) -> int:
    """Close the workspaces unused for `idle_seconds`: API sessions have no page whose closing would delete their files.

    Returns how many were closed.
    """
    now, closed = time.monotonic(), 0
    for workspace in workspaces:
        if workspace.root is not None and now - workspace.last_used > idle_seconds:
            workspace.close()
            closed += 1
    return closed


def bundled_models(folder: Path) -> dict[str, Path]:
    """The pretrained models shipped in `folder`: each subfolder that has a config and safetensors weights."""
    if not folder.is_dir():
        return {}
    found = sorted(p for p in folder.iterdir() if is_model_folder(p))
    return {BUNDLED_LABEL.format(p.name): p for p in found}


def model_choices(workspace: Workspace, bundled: Path) -> dict[str, Path]:
    """Every model a session may use: bundled ones, then its own trained and pulled ones."""
    return {**bundled_models(bundled), **workspace.models}


def zip_model(folder: Path, destination: Path, verdict: Verdict | None = None) -> Path:
    """The model as a Hub push would share it, zipped: config, weights, card, preview, target, training.json.

    So a model trained in the studio keeps its recipe and its card; the resume state
    (optimizer, pool) is left out. The files sit in one folder named like the zip,
    so unzipping never scatters them and the folder loads as it is (`nca grow FOLDER`).
    `verdict`: the one the run's card was written with, so the model is not grown again to judge it.
    """
    inside = destination.stem
    with (
        tempfile.TemporaryDirectory(prefix="nca-zip-") as scratch,
        replacing(destination) as temp,  # written beside `destination` and renamed over it: never half a zip
        zipfile.ZipFile(temp, "w", zipfile.ZIP_DEFLATED) as archive,
    ):
        for name, content in shared_files(folder, Path(scratch), log=lambda message: None, card_name=destination.stem,
                                          verdict=verdict).items():
            if isinstance(content, bytes):
                archive.writestr(f"{inside}/{name}", content)
            else:
                archive.write(content, f"{inside}/{name}")
    return destination
