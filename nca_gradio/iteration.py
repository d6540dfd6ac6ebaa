"""What one training iteration computes with, named once for the eager step and the CUDA graph alike.

`Parts` holds the model, Adam, the sample pool and the loss, with the arithmetic both paths share
(`losses`, `normalise_gradients`, `settle`); `Draw` is one iteration's random choices. The Trainer
owns a `Parts` and hands it to `graph_step.GraphedIteration`, which writes into its tensors in place.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from .losses import overflow_loss
from .model import NCA, to_rgb
from .render import Damage

RUNAWAY_BOUND = 3.0  # a cell this far out of [-1, 1] has diverged, not wandered


@dataclass
class Draw:
    """One iteration's random choices, drawn by the Trainer with its generators (`Trainer.draw`)."""

    idx: torch.Tensor  # (batch,) pool samples, on the CPU
    reinject: bool  # the first sample starts again from the empty grid
    damage: Damage | None  # erased from the last sample
    steps: int


def reset_runaways(x: torch.Tensor) -> torch.Tensor:
    """Samples with a cell beyond RUNAWAY_BOUND, reset to the empty grid before they go back to the pool.

    A diverged sample left in the pool comes back again and again, and its
    overflow penalty (1e3-1e4, against texture losses near 0.03) then steers
    every update it is in: early runs lost a third of their iterations to it.
    """
    runaway = x.abs().flatten(1).amax(dim=1) > RUNAWAY_BOUND
    return torch.where(runaway.view(-1, 1, 1, 1), torch.zeros_like(x), x)


@dataclass
class Parts:
    """The tensors and modules an iteration reads and writes; a captured graph points at these very tensors."""

    model: NCA
    optimizer: torch.optim.Optimizer
    pool: torch.Tensor  # (pool_size, C, size, size): grids kept between iterations
    loss_fn: Callable[[torch.Tensor], torch.Tensor]
    mask_generator: torch.Generator  # which cells fire at each step
    device: torch.device
    compute_dtype: torch.dtype | None  # the rollout's dtype; None: float32
    overflow_weight: float
    fire_rate: float
    batch: int
    size: int
    steps_max: int

    def autocast(self, cache: bool = True) -> torch.autocast:
        """The rollout's compute dtype (`TrainConfig.precision`); a no-op for float32. A graph capture needs `cache=False`."""
        dtype = self.compute_dtype or torch.bfloat16
        return torch.autocast(self.device.type, dtype=dtype, enabled=self.compute_dtype is not None, cache_enabled=cache)

    def losses(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(loss, texture, overflow) of a grown batch: the texture loss's batch mean plus the weighted overflow penalty."""
        texture = self.loss_fn(to_rgb(x.float(), clamp=False)).mean()
        overflow = overflow_loss(x.float()) * self.overflow_weight
        return texture + overflow, texture, overflow

    def normalise_gradients(self) -> list[torch.Tensor]:
        """Each parameter's gradient scaled to unit norm, in place: steady steps at any loss scale."""
        grads = [p.grad for p in self.model.parameters() if p.grad is not None]
        for grad in grads:
            grad /= grad.norm() + 1e-8
        return grads

    @staticmethod
    def settle(x: torch.Tensor) -> torch.Tensor:
        """What a grown batch returns to the pool as: diverged samples reset to empty (`reset_runaways`)."""
        return reset_runaways(x)
