"""The textbook rollout the fast paths are held to: `NCA.forward` step after step."""

from __future__ import annotations

import torch

from nca_gradio.model import NCA


@torch.no_grad()
def rollout(model: NCA, x: torch.Tensor, steps: int, generator: torch.Generator | None = None) -> torch.Tensor:
    for _ in range(steps):
        x = model(x, generator)
    return x
