"""DyNCA's multi-scale perception (Pajouheshgar et al. 2023), for issue 30's trial: research, not in the library.

A texture rule perceives its 3x3 neighbourhood, so a cell learns about anything
farther away only as it spreads, step by step; objects 20-40 cells across must be
built by agreement over many steps. Here each cell also perceives the grid
average-pooled by 2 and by 4 (the same identity, Sobel and Laplacian kernels at the
coarse scale, brought back up bilinearly on the torus, a factor of 2 at a time), and the perceptions are
averaged as DyNCA averages them, so the rule keeps its size (the same w1 and w2) and
a cell feels structure 4-12 cells away in one step.

`use_multiscale(trainer, scales, concat)` swaps a `Trainer`'s model for this one (same
initial weights, a new Adam) and routes its rollout through the reference step;
`grow_reference` grows any `NCA` step by step through `model.update`, the path this
model needs (`fast.py` folds only the 3x3 perception into its kernel).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nca_gradio.graph_step import make_optimizer
from nca_gradio.model import NCA, NCAConfig, draw_masks
from nca_gradio.render import PROBE_SIZE, PROBE_STEPS
from nca_gradio.schedule import Schedule
from nca_gradio.train import Trainer


def torus_upsample(y: torch.Tensor, factor: int) -> torch.Tensor:
    """Bilinear upsampling by an integer factor on a torus: the grid padded by one cell from the opposite edge first."""
    h, w = y.shape[-2:]
    padded = F.pad(y, (1, 1, 1, 1), mode="circular")
    up = F.interpolate(padded, scale_factor=factor, mode="bilinear", align_corners=False)
    return up[..., factor : factor + h * factor, factor : factor + w * factor]


BILINEAR_2X = torch.tensor([0.25, 0.75, 0.75, 0.25])


def torus_double(y: torch.Tensor) -> torch.Tensor:
    """`torus_upsample(y, 2)` as one strided transposed convolution: the same numbers, several times faster on a CPU
    (interpolate's backward is slow there)."""
    h, w = y.shape[-2:]
    kernel = torch.outer(BILINEAR_2X, BILINEAR_2X).to(y).expand(y.shape[1], 1, 4, 4)
    up = F.conv_transpose2d(F.pad(y, (1, 1, 1, 1), mode="circular"), kernel, stride=2, groups=y.shape[1])
    return up[..., 3 : 3 + 2 * h, 3 : 3 + 2 * w]


class MultiScaleNCA(NCA):
    """An NCA whose cells perceive the grid at several scales (1, 1/2, 1/4 ...): averaged into one perception as
    DyNCA does, or with `concat` side by side, each scale with weights of its own (a wider first layer)."""

    def __init__(self, config: NCAConfig | None = None, scales: tuple[int, ...] = (0, 1, 2), concat: bool = False) -> None:
        super().__init__(config)
        self.scales = tuple(sorted(scales))
        self.concat = concat
        if concat:
            self.w1 = nn.Conv2d(self.w1.in_channels * len(self.scales), self.config.hidden, 1, bias=True)

    def perceive(self, x: torch.Tensor) -> torch.Tensor:
        return self._side_by_side(x) if self.concat else self._mean(x)

    def _mean(self, x: torch.Tensor) -> torch.Tensor:
        """The mean of the perceptions at each scale; the coarse ones are summed coarsest first and brought up a
        factor of 2 at a time (a pyramid collapsed), so only one upsampling runs at the grid's full size."""
        coarse = None
        for scale in range(max(self.scales), 0, -1):
            if coarse is not None:
                coarse = torus_double(coarse)
            if scale in self.scales:
                here = super().perceive(F.avg_pool2d(x, 2**scale))
                coarse = here if coarse is None else coarse + here
        total = super().perceive(x) if 0 in self.scales else 0
        if coarse is not None:
            total = total + torus_double(coarse)
        return total / len(self.scales)

    def _side_by_side(self, x: torch.Tensor) -> torch.Tensor:
        """Each scale's perception brought up to the grid's size, concatenated finest first."""
        parts = []
        for scale in self.scales:
            here = super().perceive(F.avg_pool2d(x, 2**scale) if scale else x)
            for _ in range(scale):
                here = torus_double(here)
            parts.append(here)
        return torch.cat(parts, dim=1)


def reference_steps(model: NCA, x: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """One step per mask through `model.update` (what `fast.apply_steps` does for a plain NCA)."""
    for mask in masks.unbind(0):
        x = x + model.update(x) * mask
    return x


def use_multiscale(trainer: Trainer, scales: tuple[int, ...], concat: bool = False) -> MultiScaleNCA:
    """Give a new Trainer a multi-scale rule with the same initial weights (and a fresh Adam and lr schedule).

    With `concat` the grid scale's weights are the old rule's and the coarse scales' start at zero: the same rule at
    the start, which learns to use the coarse scales."""
    old = trainer.parts.model
    model = MultiScaleNCA(old.config, scales, concat).to(trainer.device)
    weights = old.state_dict()
    if concat:
        if model.scales[0] != 0:
            raise ValueError("side by side, the scales must include the grid's own (0)")
        wide = torch.zeros_like(model.w1.weight)
        wide[:, : old.w1.in_channels] = weights["w1.weight"]
        weights = {**weights, "w1.weight": wide}
    model.load_state_dict(weights)
    optimizer = make_optimizer(model.parameters(), trainer.config.lr, trainer.device)
    trainer.parts.model, trainer.parts.optimizer = model, optimizer
    trainer.schedule = Schedule(optimizer, trainer.config)
    trainer.rollout._plain_steps = lambda x, masks: reference_steps(model, x, masks)

    def usable() -> bool:  # the Trainer's own check grows through `fast.py`, which has no coarse scales
        finite = all(bool(torch.isfinite(p).all()) for p in model.parameters())
        return finite and bool(torch.isfinite(grow_reference(model, PROBE_SIZE, PROBE_STEPS, seed=0)).all())

    trainer._usable = usable
    trainer._last_good = trainer._snapshot()
    return model


@torch.no_grad()
def grow_reference(model: NCA, size: int, steps: int, seed: int) -> torch.Tensor:
    """Grow from the empty grid for `steps` steps in float32, masks drawn 8 steps at a time from `seed`."""
    generator = torch.Generator().manual_seed(seed)
    x = model.empty_grid(1, size)
    for start in range(0, steps, 8):
        x = reference_steps(model, x, draw_masks(x, min(8, steps - start), model.fire_rate, generator))
    return x
