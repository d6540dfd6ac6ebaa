"""Training an NCA on a texture: the Trainer's state, one iteration, and the loop.

The loop reads top to bottom in `Trainer.train_step`. Everything random comes
from generators seeded by `TrainConfig.seed`, so a run can be repeated. The
settings live in `train_config`, the lr plan in `schedule`, a rollout's steps in
`rollout_steps`, the checkpoint in `checkpoint`; opening, checkpointing and
finishing a run in a folder is `run.TrainingRun`.
"""

from __future__ import annotations

import copy
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .atomic import prepare_folder
from .checkpoint import Checkpoint
from .graph_step import GraphedIteration, load_optimizer_in_place, make_optimizer
from .images import tensor_to_image
from .iteration import RUNAWAY_BOUND, Draw, Parts, reset_runaways
from .losses import build_loss
from .model import NCA, to_rgb
from .precision import training_dtype
from .render import Damage, apply_damage, grows_finite
from .rollout_steps import RolloutSteps
from .schedule import Schedule
from .train_config import (
    GPU_RECIPE,
    VGG_RECIPE,
    ConfigError,
    TrainConfig,
    device_recipe,
    estimated_seconds,
    pick_device,
)

__all__ = ["GPU_RECIPE", "RUNAWAY_BOUND", "VGG_RECIPE", "ConfigError", "Progress", "Status", "TrainConfig", "Trainer", "device_recipe",
           "estimated_seconds", "pick_device", "reset_runaways", "train"]
MAX_ROLLBACKS = 20  # NaN or inf this often in one run: the lr is too high, say so instead of looping
SMOOTHING = 10  # the status reads the median texture loss of this many iterations
SPIKE = 3.0  # a texture loss this many times the recent median is called a spike


@dataclass
class Status:
    """Where a run stands: what a callback, the CLI's bar, the studio's page and the end of a run all read.

    Plain data (a PIL preview at most), so it can cross from a ZeroGPU worker.
    """

    iteration: int
    total: int
    seconds: float
    loss_name: str
    device: str
    history: list[dict] = field(default_factory=list)  # {"iteration", "loss", "texture", "overflow"} per iteration
    finished: bool = False  # the planned iterations are done, or the time budget spent
    stopped: bool = False  # a stop was asked for
    rollbacks: int = 0
    preview: object | None = None  # a PIL image of pool samples, when asked for
    verdict: object | None = None  # what the model learned (`verdict.Verdict`), on the last status of a run that wrote its card
    time_budget: float = 0.0  # seconds, 0 for none
    most_iters: int = 0  # the run's cap (`TrainConfig.iters`); `total` is the plan, lower while a time budget binds
    measured: bool = True  # False while a time-budgeted run has not yet fitted its plan to its speed

    @property
    def texture_loss(self) -> float | None:
        """How far the look is from the target: the total minus the overflow penalty, which spikes early and means no divergence."""
        return float(self.history[-1].get("texture", self.history[-1]["loss"])) if self.history else None

    @property
    def recent_texture_loss(self) -> float | None:
        """The median texture loss of the last `SMOOTHING` iterations: what to read, since single iterations spike early."""
        recent = [float(h.get("texture", h["loss"])) for h in self.history[-SMOOTHING:]]
        return statistics.median(recent) if recent else None

    @property
    def spiking(self) -> bool:
        """The last iteration's texture loss is far above the recent median: worth a word, so that no one takes it for divergence."""
        last, recent = self.texture_loss, self.recent_texture_loss
        return last is not None and recent is not None and last > SPIKE * recent

    @property
    def overflow_loss(self) -> float | None:
        return self.history[-1].get("overflow") if self.history else None

    @property
    def progress(self) -> Progress:
        """What a progress bar shows, with a total that holds from its first showing.

        A time-budgeted run shows no total until it has measured its speed; then, while the budget binds,
        seconds of the budget (a plan in iterations moves as the speed does; the budget does not).
        """
        if not self.measured and not self.finished:  # a budget spent before the speed was measured ends the plan where it got
            return Progress(self.iteration, None, "it")
        if self.time_budget and self.total < self.most_iters:
            return Progress(min(self.seconds, self.time_budget), self.time_budget, "s")
        return Progress(self.iteration, self.total, "it")

    @property
    def seconds_left(self) -> float | None:
        """What the budget leaves, else a straight-line estimate from the pace so far; None until measured, or once done."""
        progress = self.progress
        if self.iteration <= 0 or self.finished or self.stopped or progress.total is None:
            return None
        if progress.unit == "s":
            return progress.total - progress.done
        return self.seconds / self.iteration * (self.total - self.iteration)


@dataclass(frozen=True)
class Progress:
    """`done` of `total` in `unit` ("it" for iterations, "s" for seconds of a time budget); `total` None: not known yet."""

    done: float
    total: float | None
    unit: str


class Trainer:
    """A run's state (model, Adam, pool, generators, schedule), its iteration and its loop; it stops and resumes anywhere.

    On CUDA, after a first eager iteration and two warm-ups, every iteration replays
    as one CUDA graph (`graph_step.GraphedIteration`): at NCA sizes a GPU waits on
    kernel launches, not on arithmetic. Where capture fails it says so and steps
    eagerly; set `cuda_graph = False` to step eagerly anyway. Gradient
    checkpointing and `compile` step eagerly too (`rollout_steps`).
    """

    cuda_graph: bool = True

    def __init__(
        self, target: torch.Tensor, config: TrainConfig | None = None, vgg_features: torch.nn.Module | None = None,
        log: Callable[[str], None] = print, start: NCA | None = None, resuming: bool = False,
    ) -> None:
        """A new run. With `config.start_from` it starts from `start`, the model that names (`loading.load_start`), not the
        identity; `resuming` (`resume`) needs none, as the checkpoint's weights replace them."""
        self.config = cfg = config or TrainConfig()
        self.log = log
        self.device = pick_device(cfg.device)
        torch.manual_seed(cfg.seed)  # the loss's random directions draw from the global generator
        self.generator = torch.Generator().manual_seed(cfg.seed)  # pool sampling, steps
        self.mask_generator = torch.Generator(self.device).manual_seed(cfg.seed + 1)
        self.target = target.to(self.device)
        loss_fn, self.loss_name = build_loss(cfg.loss, self.target, vgg_features, log, cfg.match_weight)
        model = NCA(cfg.architecture).to(self.device)
        if cfg.start_from and not resuming:  # after the identity's draws: the seed repeats the same run either way
            model.load_state_dict(start_weights(cfg, start))
        self.compute_dtype = training_dtype(self.device, cfg.precision)  # None: float32
        optimizer = make_optimizer(model.parameters(), cfg.lr, self.device)
        self.schedule = Schedule(optimizer, cfg)
        self.parts = Parts(model, optimizer, model.empty_grid(cfg.pool_size, cfg.size), loss_fn, self.mask_generator,
                           self.device, self.compute_dtype, cfg.overflow_weight, cfg.fire_rate, cfg.batch, cfg.size, cfg.steps_max)
        self.rollout = RolloutSteps(self.parts, cfg.grad_checkpoint, log)
        self.iteration = 0
        self.seconds = 0.0
        self.history: list[dict] = []
        self.rollbacks = 0
        self._last_good = self._snapshot()
        self._graphed: GraphedIteration | None = None

    model = property(lambda self: self.parts.model)
    optimizer = property(lambda self: self.parts.optimizer)
    pool = property(lambda self: self.parts.pool)

    @property
    def planned_iters(self) -> int:
        return self.schedule.planned

    @property
    def compile(self) -> bool:
        """Compile the rollout with torch.compile on CUDA (set before the first step) instead of graphing the iteration."""
        return self.rollout.compile

    @compile.setter
    def compile(self, value: bool) -> None:
        self.rollout.compile = value

    @property
    def path(self) -> str:
        """How iterations run now: "cuda graph", "compiled", or "eager"."""
        if self._graphed is not None and self._graphed.captured:
            return "cuda graph"
        return "compiled" if self.rollout.compiled else "eager"

    # ------------------------------------------------------------------ one iteration

    def draw(self) -> Draw:
        """The iteration's random choices (pool samples, re-injection, damage, steps), from the run's generator.

        The samples are distinct, as in Growing NCA: with a repeat, which grown copy went
        back to the pool depended on thread timing, and a seed no longer repeated its run.
        """
        cfg = self.config
        idx = torch.randperm(cfg.pool_size, generator=self.generator)[: cfg.batch]
        damage = None
        if cfg.damage_every and self.iteration % cfg.damage_every == 0:  # the default circle, somewhere: the grid wraps
            x, y = torch.rand(2, generator=self.generator).tolist()
            damage = Damage(x=x, y=y)
        steps = int(torch.randint(cfg.steps_min, cfg.steps_max + 1, (1,), generator=self.generator))
        return Draw(idx=idx, reinject=self.iteration % 8 == 0, damage=damage, steps=steps)  # re-injection: keep learning to grow from empty

    def train_step(self) -> dict:
        """One iteration: sample the pool, grow, score, update. Returns the losses.

        Eager (`_eager_step`) or, on CUDA once Adam has its state, one replay of a CUDA graph of the same arithmetic.
        """
        draw = self.draw()
        graphed = self._graphed_iteration()
        values = graphed.run(draw) if graphed is not None else self._eager_step(draw)
        if values[3] != 1.0:  # a NaN or inf: nothing was stepped
            self._roll_back()
            return {"loss": float("nan"), "texture": float("nan"), "overflow": float("nan"), "rolled_back": True}
        self.schedule.step()
        self.iteration += 1
        if self.iteration % 10 == 0 and self._usable():
            self._last_good = self._snapshot()
        return {"loss": values[0], "texture": values[1], "overflow": values[2], "rolled_back": False}

    def _eager_step(self, draw: Draw) -> list[float]:
        """The iteration op by op: [loss, texture, overflow, finite (1.0 or 0.0)]; a non-finite one steps nothing."""
        parts = self.parts
        idx = draw.idx.to(self.device)
        x = parts.pool[idx]
        if draw.reinject:
            x[:1] = 0.0
        if draw.damage is not None:
            x[-1:] = apply_damage(x[-1:], draw.damage)
        if self.rollout.compiles_on_gpu:
            torch.compiler.cudagraph_mark_step_begin()  # last iteration's graph outputs are no longer needed
        with parts.autocast():
            x = self.rollout(x, draw.steps)
        loss, texture, overflow = parts.losses(x)
        parts.optimizer.zero_grad(set_to_none=True)
        loss.backward()  # a NaN loss gives NaN gradients: the one check below catches both
        grads = parts.normalise_gradients()
        # The iteration's one host sync: the losses, and a NaN/inf guard on every gradient
        # (a normalised gradient's sum is finite exactly when all its entries are).
        values = torch.stack([loss.detach(), texture.detach(), overflow.detach(), *(g.sum() for g in grads)]).tolist()
        if not all(math.isfinite(v) for v in values):
            parts.optimizer.zero_grad(set_to_none=True)
            return [*values[:3], 0.0]
        parts.optimizer.step()
        with torch.no_grad():
            parts.pool[idx] = parts.settle(x.detach())
        return [*values[:3], 1.0]

    def _graphed_iteration(self) -> GraphedIteration | None:
        """The CUDA graph of the iteration, where it runs: CUDA, `cuda_graph`, no checkpointing or compile, Adam's state made."""
        if self._graphed is None:
            if not (self.cuda_graph and self.device.type == "cuda" and not self.config.grad_checkpoint
                    and not self.rollout.compile and self.optimizer.state):
                return None
            self._graphed = GraphedIteration(self.parts, self.log)
        return None if self._graphed.failed else self._graphed

    # ------------------------------------------------------------------ the loop

    def train(
        self, callback: Callable[[Status], None] | None = None, should_stop: Callable[[], bool] | None = None,
        preview_every: int = 10, max_seconds: float | None = None,
    ) -> Status:
        """Run until the planned iterations, a stop request, or `max_seconds` (a slice of a longer run).

        Whatever ends the run, the model left in place is the last good one.
        """
        stopped = False
        slice_start = time.perf_counter()
        while self.iteration < self.planned_iters:
            if should_stop is not None and should_stop():
                stopped = True
                break
            if max_seconds is not None and time.perf_counter() - slice_start > max_seconds:
                break
            if self.schedule.spent(self.seconds):
                self.schedule.planned = self.iteration  # spent: the run is as long as it got
                break
            started = time.perf_counter()
            losses = self.train_step()
            self.seconds += time.perf_counter() - started
            if losses["rolled_back"]:
                if self.rollbacks > MAX_ROLLBACKS:
                    raise FloatingPointError(f"training hit NaN or inf more than {MAX_ROLLBACKS} times; try a lower lr")
                continue
            self.schedule.fit(self.iteration, self.seconds)
            self.history.append({"iteration": self.iteration, **{k: losses[k] for k in ("loss", "texture", "overflow")}})
            if callback is not None:
                show = self.iteration % preview_every == 0 or self.iteration == self.planned_iters
                callback(self.status(preview=self.preview() if show else None))
        self.remember_good()
        return self.status(stopped)

    @property
    def finished(self) -> bool:
        """The run has done its planned iterations, or spent its time budget."""
        return self.iteration >= self.planned_iters or self.schedule.spent(self.seconds)

    def status(self, stopped: bool = False, preview: object | None = None) -> Status:
        return Status(self.iteration, self.planned_iters, self.seconds, self.loss_name, str(self.device), self.history,
                      finished=self.finished, stopped=stopped, rollbacks=self.rollbacks, preview=preview,
                      time_budget=self.config.time_budget, most_iters=self.config.iters, measured=self.schedule.measured)

    def preview(self, count: int = 4):
        """Pool samples side by side, as a PIL image."""
        with torch.no_grad():
            tiles = to_rgb(self.pool[: min(count, self.config.pool_size)].float())
            return tensor_to_image(torch.cat(list(tiles), dim=-1))

    # ------------------------------------------------------------------ safety

    def _usable(self) -> bool:
        """Finite weights that also grow a finite texture: the only kind kept as "last good" or saved."""
        finite = bool(torch.stack([torch.isfinite(p).all() for p in self.model.parameters()]).all())  # one sync
        return finite and grows_finite(self.model)

    def _snapshot(self) -> dict:
        return {"model": copy.deepcopy(self.model.state_dict()), "optimizer": copy.deepcopy(self.optimizer.state_dict()),
                "iteration": self.iteration}

    def remember_good(self) -> None:
        """Keep the weights as the last good ones if they are usable, else go back to the last good ones."""
        if self._usable():
            self._last_good = self._snapshot()
        else:
            self._restore(self._last_good)

    def good_state(self) -> dict:
        """The weights, Adam's state and iteration a save keeps: the current ones if usable, else the last good ones."""
        return self._snapshot() if self._usable() else self._last_good

    def _restore(self, snapshot: dict) -> None:
        """Back to a snapshot, in the tensors the model and Adam already have (a captured graph points at them)."""
        self.model.load_state_dict(snapshot["model"])
        load_optimizer_in_place(self.optimizer, snapshot["optimizer"])

    def _roll_back(self) -> None:
        """A NaN or inf appeared: go back to the last good weights, and clear the poisoned pool."""
        self.rollbacks += 1
        self._restore(self._last_good)
        bad = ~torch.isfinite(self.pool).flatten(1).all(dim=1)
        self.pool[bad] = 0.0

    # ------------------------------------------------------------------ checkpoints

    @property
    def checkpoint_bytes(self) -> int:
        """About what `save` writes: the pool, the weights and Adam's two moments, plus a megabyte for the rest."""
        return self.pool.numel() * 4 + 3 * self.model.num_parameters * 4 + 1_000_000

    def save(self, folder: str | Path, target: torch.Tensor | None = None) -> Path:
        """Write the last good model and the checkpoint a resume continues from (`checkpoint.Checkpoint`). Never pickles."""
        folder = prepare_folder(folder)
        Checkpoint.capture(self).write(folder, target)
        return folder

    @classmethod
    def resume(
        cls, folder: str | Path, target: torch.Tensor, overrides: dict | None = None, vgg_features: torch.nn.Module | None = None,
        log: Callable[[str], None] = print,
    ) -> Trainer:
        """Continue a run saved by `save`; `overrides` may change its iters, time budget, lr and device.

        A damaged checkpoint (truncated, emptied, keys missing) is a one-line `CheckpointError` naming the file.
        """
        checkpoint = Checkpoint.read(folder)
        trainer = cls(target, checkpoint.config(overrides), vgg_features, log, resuming=True)
        checkpoint.restore(trainer)
        return trainer


def start_weights(config: TrainConfig, start: NCA | None) -> dict[str, torch.Tensor]:
    """The weights a run from `config.start_from` begins with: those of `start`, the model it names, of the run's architecture."""
    if start is None:
        raise ConfigError(f"this run starts from {config.start_from}: load it with loading.load_start and pass it as start "
                          "(run.TrainingRun.open does)")
    if start.config != config.architecture:
        raise ConfigError(f"{config.start_from} is {start.config}, but this run builds {config.architecture}: a run started from "
                          "a model keeps its architecture (make its settings with TrainConfig.for_device(start=...))")
    return start.state_dict()


def train(
    target: torch.Tensor, config: TrainConfig | None = None, callback: Callable[[Status], None] | None = None,
    should_stop: Callable[[], bool] | None = None, vgg_features: torch.nn.Module | None = None, log: Callable[[str], None] = print,
    start: NCA | None = None,
) -> Trainer:
    """Train a new NCA on a target image (1, 3, H, W) in [0, 1], from `start`'s rule where `config.start_from` names one;
    the trainer holds its model, history and `status()`."""
    trainer = Trainer(target, config, vgg_features, log, start)
    trainer.train(callback, should_stop)
    return trainer
