"""Two rules on one grid: each cell runs the rule its mask names, and compatible rules blend per cell.

The mask holds, for every cell, how much of rule B it runs (0 = A, 1 = B). For *compatible* rules (same
channels, hidden size and perception: a rule and its fine-tuned child, `nca train --from`), a grey value
interpolates the two rules' weights in that cell, as Self-Organising Textures grafted textures:

    hidden = relu((1 - m) * (w1_A p + b1_A) + m * (w1_B p + b1_B))
    update = (1 - m) * w2_A hidden + m * w2_B hidden

which is exactly the rule whose weights are (1 - m) * A + m * B (both layers are linear in their weights).
For unrelated rules the mask is read as A below 0.5 and B from 0.5: each cell runs one rule, on the first
channels that rule has (the grid has as many as the larger one), and the seam is what it is. A cell fires with
its own rule's probability, blended the same way. The live page (`static/nca-live.js`) runs this same step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from . import fast
from .fast import circular_pad, perception_weight
from .model import NCA, draw_masks
from .model_folder import load_folder
from .render import STEP_CHUNK, RenderError

SPLITS = ("vertical", "horizontal", "circle")
CIRCLE_RADIUS = 0.3  # of the canvas's shorter side: the circle split's B region


def check_mask(mask: torch.Tensor) -> torch.Tensor:
    """The mask, if it is one grey value per cell from 0 (rule A) to 1 (rule B); else a one-line RenderError."""
    if mask.ndim != 2:
        raise RenderError(f"a graft mask is one grey value per cell (H, W), got shape {tuple(mask.shape)}")
    if not torch.isfinite(mask).all() or mask.min() < 0 or mask.max() > 1:
        raise RenderError("a graft mask's values must be from 0 (rule A) to 1 (rule B)")
    return mask


def compatible(a: NCA, b: NCA) -> bool:
    """Whether two rules can blend their weights: same shapes, and the same perception (what the weights multiply)."""
    return (a.channels, a.hidden, a.perception) == (b.channels, b.hidden, b.perception)


class Graft:
    """Rules A and B on one grid, `mask` (H, W) in [0, 1] saying how much of B each cell runs.

    Quacks like an `NCA` where the renderers need it (`render.Rules`: `channels`, `empty_grid`, `eval`, `stepper`), so `render.run`,
    `grow` and `heal` take it as they take one rule. The mask is fixed to a grid size; grow at that size.
    """

    def __init__(self, a: NCA, b: NCA, mask: torch.Tensor) -> None:
        check_mask(mask)
        self.a, self.b = a.eval(), b.eval()
        self.blends = compatible(a, b)
        self.mask = (mask if self.blends else (mask >= 0.5).to(mask.dtype)).float()[None, None]
        self.channels = max(a.channels, b.channels)
        self.fire_rate = (1 - self.mask) * a.fire_rate + self.mask * b.fire_rate  # (1, 1, H, W)
        self.weights = [(perception_weight(r), r.w1.bias, r.w2.weight.flatten(1)) for r in (a, b)]

    @property
    def size(self) -> tuple[int, int]:
        return self.mask.shape[-2], self.mask.shape[-1]

    def eval(self) -> Graft:
        return self

    def empty_grid(self, batch: int, height: int, width: int | None = None) -> torch.Tensor:
        if (height, width or height) != self.size:
            raise RenderError(f"this graft's mask is {self.size[1]}x{self.size[0]} cells: grow it at that size")
        return torch.zeros(batch, self.channels, height, width or height, device=self.mask.device)

    def update(self, x: torch.Tensor) -> torch.Tensor:
        """The change every cell would make, before the stochastic mask."""
        m = self.mask.to(x.dtype)
        if self.blends:  # the two rules' pre-activations mix before the relu: `fast.update` cannot be used
            (ka, ba, wa), (kb, bb, wb) = self.weights
            padded = circular_pad(x)
            hidden = torch.relu((1 - m) * F.conv2d(padded, ka, ba) + m * F.conv2d(padded, kb, bb)).permute(0, 2, 3, 1)
            ua, ub = F.linear(hidden, wa).permute(0, 3, 1, 2), F.linear(hidden, wb).permute(0, 3, 1, 2)
        else:  # each rule on its own first channels; zero on the channels it does not have
            ua, ub = (F.pad(fast.update(rule, x[:, : rule.channels], weights), (0, 0, 0, 0, 0, self.channels - rule.channels))
                      for rule, weights in zip((self.a, self.b), self.weights))
        return (1 - m) * ua + m * ub

    def fire(self, x: torch.Tensor, steps: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """(steps, B, 1, H, W) cell masks, each cell firing with its own rule's rate (`model.draw_masks`, a rate per cell)."""
        return draw_masks(x, steps, self.fire_rate, generator)

    def stepper(self, generator: torch.Generator) -> Callable[[torch.Tensor, int], torch.Tensor]:
        """`render.run`'s way to advance n steps, in float32, a few steps' masks at a time."""

        def advance(x: torch.Tensor, n: int) -> torch.Tensor:
            for start in range(0, n, STEP_CHUNK):
                for mask in self.fire(x, min(STEP_CHUNK, n - start), generator).unbind(0):
                    x = x + self.update(x) * mask
            return x

        return advance


def split_mask(split: str, height: int, width: int) -> torch.Tensor:
    """(H, W): `vertical` puts B on the right half, `horizontal` on the bottom half, `circle` in a centred disc."""
    if split not in SPLITS:
        raise RenderError(f"the split must be one of {', '.join(SPLITS)}, got {split!r}")
    ys = torch.arange(height, dtype=torch.float32)[:, None] + 0.5
    xs = torch.arange(width, dtype=torch.float32)[None, :] + 0.5
    if split == "vertical":
        hit = (xs >= width / 2).expand(height, width)
    elif split == "horizontal":
        hit = (ys >= height / 2).expand(height, width)
    else:
        hit = (xs - width / 2).square() + (ys - height / 2).square() <= (CIRCLE_RADIUS * min(height, width)) ** 2
    return hit.float()


def image_mask(source: str | Path | object, height: int, width: int) -> torch.Tensor:
    """(H, W) from an image: its grey level, white = B, black = A, stretched to the grid (any image `images` reads)."""
    import numpy as np
    from PIL import Image

    from .images import load_image

    grey = load_image(source).convert("L").resize((width, height), Image.Resampling.BILINEAR)
    return torch.from_numpy(np.asarray(grey, dtype=np.float32) / 255.0)


@dataclass(frozen=True)
class GraftWith:
    """A second rule by its folder, and the mask (H, W) of how much of it each cell runs: what a studio session keeps
    of a graft it grew, to heal it later (folders and tensors travel to ZeroGPU workers; models are built there)."""

    folder: Path
    mask: torch.Tensor

    def rules(self, first: Path, device: torch.device | str = "cpu") -> Graft:
        return Graft(load_folder(first, device), load_folder(self.folder, device), self.mask.to(device))


def rules(folder: Path, device: torch.device | str = "cpu", graft: GraftWith | None = None) -> NCA | Graft:
    """The model in `folder`, or it grafted with a second rule: what the Grow and Heal tabs run."""
    return graft.rules(folder, device) if graft else load_folder(folder, device)
