"""A model by reference: a local folder, or a Hub repo id (`owner/name`) pulled and checked like one."""

from __future__ import annotations

from pathlib import Path

import torch

from .errors import UserError
from .hub import HubError, is_repo_id, pull
from .model import NCA
from .model_folder import ModelLoadError, load_folder


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
    if not isinstance(ref, str) or Path(ref).is_dir() or not is_repo_id(ref):
        return load_folder(ref, device)
    try:
        folder = pull(ref, revision=revision, token=token, endpoint=endpoint)
    except HubError as exc:  # the user may have meant a folder and mistyped it: say both were looked for
        raise HubError(f"there is no folder {ref} here, and {exc}") from None
    try:
        return load_folder(folder, device)
    except ModelLoadError as exc:
        raise ModelLoadError(f"{ref}: {exc}") from None


def load_start(ref: str | Path) -> NCA:
    """The model a training run starts from (`TrainConfig.start_from`), a folder or Hub repo id checked like any model.

    Loaded without drawing from the global random generator (building a model draws initial weights, and its
    check grows a grid), so a run's seed repeats the same run whether it starts from a model or not.
    """
    try:
        with torch.random.fork_rng(devices=[]):
            return load_model(ref)
    except UserError as exc:  # a missing folder, a broken model, a Hub that cannot be reached
        raise ModelLoadError(f"the model to start from: {exc}") from None
