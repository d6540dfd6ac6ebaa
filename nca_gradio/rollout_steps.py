"""A training rollout's steps, eager, checkpointed or compiled: how the Trainer's eager iteration grows its batch.

The steps run in chunks: with gradient checkpointing each chunk is recomputed in backward (less
memory), and with `compile` on CUDA each chunk is a torch.compile'd function replayed as a CUDA
graph. A short last chunk runs plain, or padded with steps where no cell fires (the same numbers).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch.utils.checkpoint import checkpoint

from .fast import apply_steps, compile_steps
from .iteration import Parts
from .model import draw_masks

CHUNK = 8  # steps per call when not checkpointing
GRAPHED_CHUNK = 16  # the same, compiled into CUDA graphs: fewer replays, each a longer compile

Steps = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class RolloutSteps:
    """Grows a batch through `steps` steps in chunks, the way the run's settings ask for."""

    def __init__(self, parts: Parts, grad_checkpoint: bool, log: Callable[[str], None]) -> None:
        self.parts = parts
        self.grad_checkpoint = grad_checkpoint
        self.log = log
        self.compile = False  # set before the first rollout: compile the chunks on CUDA
        self.compiled = False  # whether the rollout runs compiled (set at the first rollout with `compile`)
        self._compiled_steps: Steps | None = None
        self.graphed_chunk = GRAPHED_CHUNK

    @property
    def compiles_on_gpu(self) -> bool:
        """`compile` asked for, on CUDA: the only place the compiled, graph-replayed rollout runs."""
        return self.compile and self.parts.device.type == "cuda"

    def __call__(self, x: torch.Tensor, steps: int) -> torch.Tensor:
        masks = draw_masks(x, steps, self.parts.fire_rate, self.parts.mask_generator)
        x = x.contiguous(memory_format=torch.channels_last)  # the layout every step returns: one compiled variant
        chunk = self.chunk()
        run = self._steps_fn(x, chunk)
        graphed = self.compiled and not self.grad_checkpoint
        for start in range(0, steps, chunk):
            part = masks[start : start + chunk]
            fn = run
            if len(part) < chunk:  # a short tail: no recompiling for it
                if graphed:  # padded with steps where no cell fires: x + 0 * update, the same numbers and gradients
                    part = torch.cat([part, part.new_zeros(chunk - len(part), *part.shape[1:])])
                else:
                    fn = self._plain_steps
            x = checkpoint(fn, x, part, use_reentrant=False) if self.grad_checkpoint else fn(x, part)
        return x

    def _plain_steps(self, x: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        return apply_steps(self.parts.model, x, masks)

    def chunk(self) -> int:
        """Steps per call; with checkpointing, the segment that needs least memory.

        Checkpointing keeps one state per segment (C channels) plus one segment's
        activations (about hidden + 2C channels a step), least at
        k = sqrt(steps * C / (hidden + 2C)): a few steps, not sqrt(steps). The
        recompute is one extra forward whatever k is.
        """
        if not self.grad_checkpoint:
            return self.graphed_chunk if self.compiles_on_gpu else CHUNK
        c, h = self.parts.model.channels, self.parts.model.hidden
        best = math.sqrt(self.parts.steps_max * c / (h + 2 * c))
        return 2 ** max(0, round(math.log2(best)))

    def _steps_fn(self, x: torch.Tensor, chunk: int) -> Steps:
        """The plain step loop, or once `compile` is set on CUDA, its compiled form (probed on a throwaway batch)."""
        if not self.compiles_on_gpu:
            return self._plain_steps
        if self._compiled_steps is None:

            def probe(fn: Callable) -> None:
                probe_x = torch.zeros_like(x, memory_format=torch.channels_last)
                masks = torch.ones(chunk, *probe_x[:, :1].shape, device=x.device)
                with self.parts.autocast():
                    out = checkpoint(fn, probe_x, masks, use_reentrant=False) if self.grad_checkpoint else fn(probe_x, masks)
                out.float().sum().backward()
                self.parts.optimizer.zero_grad(set_to_none=True)

            # CUDA graphs replay recompute-free chunks only: checkpointing reruns a chunk inside backward
            mode = None if self.grad_checkpoint else "reduce-overhead"
            self.log("compiling the rollout for this GPU: the first iteration takes about half a minute")
            self._compiled_steps, self.compiled = compile_steps(self.parts.model, probe, self.log, mode)
        return self._compiled_steps
