"""A whole training iteration as one CUDA graph: rollout, loss, backward, gradient normalisation, Adam, pool update.

At NCA sizes a GPU waits on kernel launches, not on arithmetic: an iteration of
32..96 steps launches thousands of small kernels. Captured once and replayed, it
is one launch. A graph has fixed shapes and may not wait for the host, so:

- every iteration rolls out `steps_max` steps, and the steps past the drawn
  count fire no cell (x + 0 * update: the same numbers and the same gradients);
- a non-finite iteration is undone inside the graph (`torch.where` keeps the
  old weights, Adam moments and pool samples) and the host learns of it from
  the iteration's one readback, then rolls back as an eager run does;
- the random draws stay the Trainer's, made outside the graph with its
  generators and written into the graph's input tensors, so a seed trains the
  same run graphed or not.

On a CPU, or with `capture=False`, the very same body runs uncaptured: that is
how the tests hold it to the eager `Trainer.train_step`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable

import torch

from .fast import apply_steps
from .iteration import Draw, Parts


class CaptureUnavailable(RuntimeError):
    """CUDA graphs cannot be used for training here (no CUDA, or the capture failed)."""


class GraphedIteration:
    """`Trainer.train_step`'s arithmetic from the draws on, recorded once as a CUDA graph and replayed.

    The first `WARMUP` runs execute the body uncaptured on a side stream (cuDNN and
    cuFFT choose their kernels, lazy buffers are made), the next captures it and
    replays; every later one only replays. Adam must already have its state (one
    eager iteration gives it) and must be `capturable`, with its lr a tensor, so
    the scheduler's changes reach the replayed step.
    """

    WARMUP = 2  # PyTorch's whole-network capture example warms up 3 times; the Trainer's first iteration is eager

    def __init__(self, parts: Parts, log: Callable[[str], None] = print, capture: bool = True) -> None:
        device = parts.device
        self.parts = parts
        self.log = log
        self.capture = capture
        if capture and device.type != "cuda":
            raise CaptureUnavailable(f"CUDA graphs need a CUDA device, not {device.type}")
        self.idx = torch.zeros(parts.batch, dtype=torch.long, device=device)
        self.keep = torch.ones(parts.batch, 1, 1, 1, dtype=torch.bool, device=device)
        self.erase = torch.ones(parts.batch, 1, parts.size, parts.size, device=device)  # 0 where the damage erases
        self.noise = torch.ones(parts.steps_max, parts.batch, 1, parts.size, parts.size, device=device)
        self.report: torch.Tensor | None = None  # loss, texture, overflow, finite (1 or 0): written by the body
        self.graph: torch.cuda.CUDAGraph | None = None
        self.failed = False  # the capture failed: the Trainer steps eagerly from the next iteration
        self.runs = 0

    @property
    def captured(self) -> bool:
        return self.graph is not None

    def load(self, draw: Draw) -> None:
        """Write one iteration's draws into the graph's inputs; the cell masks come from the Trainer's mask generator.

        `noise[:steps]` takes the numbers `draw_masks` would (one uniform draw of the same shape); the
        steps after are 1.0, which no fire rate (at most 1) exceeds: no cell fires in them.
        """
        size = self.erase.shape[-1]
        self.idx.copy_(draw.idx)
        self.keep.fill_(True)
        if draw.reinject:
            self.keep[:1] = False
        self.erase.fill_(1.0)
        if draw.damage is not None:
            self.erase[-1:] = 1.0 - draw.damage.mask(size, size, self.erase.device)
        self.noise[: draw.steps].uniform_(generator=self.parts.mask_generator)
        self.noise[draw.steps :].fill_(1.0)

    def run(self, draw: Draw) -> list[float]:
        """One iteration: [loss, texture, overflow, finite (1.0 or 0.0)].

        Where the capture fails, this iteration runs uncaptured, the Trainer is told
        (`log`) and `failed` turns True: the Trainer then steps eagerly.
        """
        self.load(draw)
        if self.graph is not None:
            self.graph.replay()
        elif self.capture and self.runs >= self.WARMUP:
            try:
                self._capture()
                self.graph.replay()
            except CaptureUnavailable as exc:
                self.capture, self.failed = False, True
                self.log(f"CUDA graph capture of the training iteration failed, training eagerly ({exc})")
                self._uncaptured()
        elif self.capture:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                self._uncaptured()
            torch.cuda.current_stream().wait_stream(side)
        else:
            self._uncaptured()
        self.runs += 1
        return self.report.tolist()

    def _uncaptured(self) -> None:
        self.parts.optimizer.zero_grad(set_to_none=True)
        self.body()

    def _capture(self) -> None:
        """Record the body; the gradients it writes become the graph's own (static) tensors."""
        optimizer = self.parts.optimizer
        optimizer.zero_grad(set_to_none=True)
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                self.body()
        except Exception as exc:  # whatever refused the capture, training goes on eagerly
            optimizer.zero_grad(set_to_none=True)  # gradients from a discarded capture point nowhere
            raise CaptureUnavailable(f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}") from exc
        self.graph = graph

    def body(self) -> None:
        """The iteration from its inputs to `report`: what the graph records. Nothing here may wait for the host."""
        parts = self.parts
        pool = parts.pool
        x = torch.where(self.keep, pool.index_select(0, self.idx), 0.0) * self.erase
        masks = (self.noise < parts.fire_rate).to(x.dtype)
        with parts.autocast(cache=False):  # autocast's weight cache would outlive the capture
            x = apply_steps(parts.model, x.contiguous(memory_format=torch.channels_last), masks)
        loss, texture, overflow = parts.losses(x)
        loss.backward()
        grads = parts.normalise_gradients()
        checked = torch.stack([loss.detach(), texture.detach(), overflow.detach(), *(g.sum() for g in grads)])
        finite = torch.isfinite(checked).all()
        guarded = optimizer_tensors(parts.optimizer)
        before = [t.clone() for t in guarded]
        parts.optimizer.step()
        for now, old in zip(guarded, before):
            now.copy_(torch.where(finite, now, old))  # a non-finite iteration changes nothing
        with torch.no_grad():  # the samples are distinct (`Trainer.draw`): a plain indexed copy
            pool.index_copy_(0, self.idx, torch.where(finite, parts.settle(x.detach()), pool.index_select(0, self.idx)))
        self.report = torch.stack([checked[0], checked[1], checked[2], finite.to(checked.dtype)])


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    """Every tensor an optimizer step writes: the parameters and their state (Adam's step and moments)."""
    tensors = []
    for group in optimizer.param_groups:
        for param in group["params"]:
            tensors.append(param.data)
            tensors += [v for v in optimizer.state[param].values() if isinstance(v, torch.Tensor)]
    return tensors


def load_optimizer_in_place(optimizer: torch.optim.Optimizer, saved: dict) -> None:
    """`optimizer.load_state_dict(saved)`, written into the tensors the optimizer already has.

    A captured graph keeps pointing at those tensors, so they must not be
    replaced. A parameter the saved state has no entry for gets zeros: Adam at
    step 0 with zero moments steps exactly as a fresh Adam does.
    """
    if not optimizer.state:
        optimizer.load_state_dict(copy.deepcopy(saved))  # a copy: Adam would keep the saved tensors themselves
        return
    for group, saved_group in zip(optimizer.param_groups, saved["param_groups"]):
        set_lr(group, saved_group["lr"])
    params = [p for group in optimizer.param_groups for p in group["params"]]
    for index, param in enumerate(params):
        old = saved["state"].get(index, {})
        for key, value in optimizer.state[param].items():
            if isinstance(value, torch.Tensor) and key in old:
                value.copy_(old[key])
            elif isinstance(value, torch.Tensor):
                value.zero_()


def set_lr(group: dict, lr: float | torch.Tensor) -> None:
    """Set a parameter group's lr; a tensor lr (capturable Adam) is filled in place, so a graph sees the change."""
    if isinstance(group["lr"], torch.Tensor):
        group["lr"].fill_(float(lr))
    else:
        group["lr"] = float(lr)


def make_optimizer(params: Iterable[torch.nn.Parameter], lr: float, device: torch.device) -> torch.optim.Adam:
    """Adam as the Trainer uses it; on CUDA capturable, with its lr a tensor, so an iteration can be a graph."""
    if device.type == "cuda":
        return torch.optim.Adam(params, lr=torch.tensor(lr, device=device), capturable=True)
    return torch.optim.Adam(params, lr=lr)
