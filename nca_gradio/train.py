"""Training an NCA on a texture: config, sample pool, the loop, callbacks, checkpoints.

The loop reads top to bottom in `Trainer.train_step`. Everything random comes
from generators seeded by `TrainConfig.seed`, so a run can be repeated.
"""

from __future__ import annotations

import copy
import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import ClassVar

import torch
from torch.utils.checkpoint import checkpoint

from .atomic import prepare_folder
from .errors import UserError
from .fast import apply_steps, compile_steps
from .graph_step import Draw, GraphedIteration, load_optimizer_in_place, make_optimizer, set_lr
from .images import tensor_to_image
from .losses import LOSS_NAMES, VGG_LOSSES, build_loss, overflow_loss
from .model import NCA, PRESETS, NCAConfig, draw_masks, to_rgb
from .model_folder import (
    RESUME_ADVICE,
    TRAINING_LOG,
    TRAINING_STATE,
    ModelLoadError,
    damaged,
    load_folder,
    read_checkpoint,
    write_json,
    write_model,
    write_target,
    write_training_state,
)
from .precision import PRECISIONS, dtype_name, training_dtype
from .render import Damage, apply_damage, grows_finite


class ConfigError(UserError, ValueError):
    """A training setting out of range; the message names the field and the allowed range."""


@dataclass
class TrainConfig:
    """Everything that decides a training run. Defaults fit a 2-core CPU in under 15 minutes."""

    preset: str = "texture"
    loss: str = "auto"
    iters: int = 500
    size: int = 64  # training grid side; any size can be grown later
    target_size: int = 128  # the target image is cropped and resized to this
    batch: int = 4
    pool_size: int = 64  # small, so each grid is grown ~30 times in 500 iterations: training sees long rollouts
    steps_min: int = 32
    steps_max: int = 96
    lr: float = 2e-3
    lr_decay_at: tuple[float, ...] = (0.5, 0.8)  # fractions of iters where lr is multiplied by 0.3
    overflow_weight: float = 1.0
    seed: int = 0
    device: str = "auto"
    grad_checkpoint: bool = False
    fire_rate: float = NCAConfig.fire_rate
    perception: str = NCAConfig.perception  # "isotropic": no sense of direction (model.PERCEPTIONS)
    match_weight: float = 0.0  # patch loss only: pull patches towards the target's own, so objects keep their edges (PatchLoss)
    precision: str = "auto"  # the rollout's compute dtype: auto is bfloat16 on CUDA, float32 elsewhere (precision.training_dtype)
    damage_every: int = 0  # every Nth iteration one grid of the batch loses a random circle, so the rule practises healing (0: off)
    time_budget: float = 0.0  # seconds of training; iterations and the lr schedule fit the measured speed, at most `iters` (0: off)

    RANGES: ClassVar[dict[str, tuple]] = {
        "iters": (1, 100_000),
        "size": (16, 512),
        "target_size": (32, 1024),
        "batch": (1, 64),
        "pool_size": (1, 4096),
        "steps_min": (1, 1024),
        "steps_max": (1, 1024),
        "lr": (1e-6, 1.0),
        "overflow_weight": (0.0, 1e6),
        "seed": (0, 2**63 - 1),
        "match_weight": (0.0, 10.0),
        "damage_every": (0, 100_000),
        "time_budget": (0.0, 7 * 86_400.0),
    }
    CHOICES: ClassVar[dict[str, tuple]] = {"preset": tuple(PRESETS), "loss": LOSS_NAMES, "device": ("auto", "cpu", "cuda", "mps"), "precision": PRECISIONS}

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        for name, (low, high) in self.RANGES.items():
            value = getattr(self, name)
            kind = float if isinstance(low, float) else int
            if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not isinstance(value, int)):
                raise ConfigError(f"{name} must be {'a number' if kind is float else 'an integer'}, got {value!r}")
            if not (low <= value <= high) or (isinstance(value, float) and not math.isfinite(value)):
                raise ConfigError(f"{name} must be between {low} and {high}, got {value!r}")
        for name, allowed in self.CHOICES.items():
            value = getattr(self, name)
            if not (value in allowed or (name == "device" and isinstance(value, str) and value.startswith("cuda:"))):
                raise ConfigError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
        if self.steps_min > self.steps_max:
            raise ConfigError(f"steps_min ({self.steps_min}) must not exceed steps_max ({self.steps_max})")
        if self.batch > self.pool_size:
            raise ConfigError(f"batch ({self.batch}) must not exceed pool_size ({self.pool_size})")
        if self.match_weight and self.loss in VGG_LOSSES:
            raise ConfigError(f"match_weight is part of the patch loss: use loss patch (or auto offline), not {self.loss}")
        if not all(0.0 < f < 1.0 for f in self.lr_decay_at):
            raise ConfigError(f"lr_decay_at must hold fractions between 0 and 1, got {self.lr_decay_at!r}")
        self.architecture  # noqa: B018 - a bad perception or fire rate is refused here, not when the model is built

    @property
    def architecture(self) -> NCAConfig:
        """The model this run trains: its preset's size, with this run's fire rate and perception."""
        try:
            return replace(PRESETS[self.preset], fire_rate=self.fire_rate, perception=self.perception)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def for_device(cls, device: str = "auto", **chosen) -> TrainConfig:
        """The recipe for the device the run will use (`device_recipe`), with the user's own choices on top."""
        recipe = device_recipe(pick_device(device), chosen.get("loss", "auto"))
        return cls(**{**recipe, **chosen, "device": device})

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown training settings: {', '.join(unknown)}")
        data = dict(data)
        if "lr_decay_at" in data:
            data["lr_decay_at"] = tuple(data["lr_decay_at"])
        return cls(**data)


GPU_RECIPE = {"iters": 3000, "batch": 8, "pool_size": 256, "match_weight": 0.02, "time_budget": 60.0}
VGG_RECIPE = {"lr": 1e-3, "iters": 2000, "time_budget": 0.0}  # Self-Organising Textures: 5,000 at 1e-3; DyNCA: 2,000 at 1e-3


def device_recipe(device: torch.device, loss: str = "auto") -> dict:
    """Settings that differ from TrainConfig's CPU defaults on this device, for this loss.

    A CPU keeps the defaults (500 iterations fit 15 minutes on 2 idle cores). On a
    CUDA GPU iterations are cheap and buy structure, so the run is longer, wider and
    matches patches, within a minute.
    A VGG loss asked for by name trains as its references did: lr 1e-3 for at least
    2,000 iterations, with no time budget to cut it short; patch matching is not its.
    """
    recipe = dict(GPU_RECIPE) if device.type == "cuda" else {}
    if loss in VGG_LOSSES:
        recipe.pop("match_weight", None)
        recipe.update(VGG_RECIPE, iters=max(VGG_RECIPE["iters"], recipe.get("iters", 0)))
    return recipe


def fitted_milestones(milestones: Counter, done: int, fractions: tuple[float, ...], planned: int) -> Counter:
    """lr milestones for a run now planned at `planned` iterations, `done` of them done.

    Milestones already passed stay; the others sit at their fractions of the new
    plan, never in the past, so a budgeted run decays its lr at the same fractions
    of its length as a run of fixed iterations.
    """
    passed = [m for m in milestones.elements() if m <= done]
    ahead = [max(done + 1, int(f * planned)) for f in sorted(fractions)[len(passed):]]
    return Counter(passed + ahead)


SECONDS_PER_ITERATION = {"cpu": 1.8, "cuda": 0.08, "mps": 0.5}  # measured: texture preset, 64 px, batch 4, 32..96 steps


def estimated_seconds(config: TrainConfig, device: torch.device) -> float:
    """A rough duration of a run, for the page to show before Start; a time budget caps it.

    From each device's measured pace for the default recipe, scaled by the work a step
    does: cells x batch x parameters on a CPU (compute-bound), steps alone on a GPU
    (bound by kernel launches at these sizes). Patch matching costs about 40% more.
    """
    steps = (config.steps_min + config.steps_max) / 128
    cost = NCA(config.architecture).num_parameters / NCA(PRESETS["texture"]).num_parameters
    work = steps if device.type == "cuda" else steps * (config.size / 64) ** 2 * config.batch / 4 * cost
    per_iteration = SECONDS_PER_ITERATION.get(device.type, SECONDS_PER_ITERATION["cpu"]) * work * (1.4 if config.match_weight else 1.0)
    total = per_iteration * config.iters
    return min(total, config.time_budget) if config.time_budget else total


BUDGET_WARMUP = 5  # iterations before the speed is measured: the first ones compile, warm caches and allocate


RUNAWAY_BOUND = 3.0  # a cell this far out of [-1, 1] has diverged, not wandered


def reset_runaways(x: torch.Tensor) -> torch.Tensor:
    """Samples with a cell beyond RUNAWAY_BOUND, reset to the empty grid before they go back to the pool.

    A diverged sample left in the pool comes back again and again, and its
    overflow penalty (1e3-1e4, against texture losses near 0.03) then steers
    every update it is in: early runs lost a third of their iterations to it.
    """
    runaway = x.abs().flatten(1).amax(dim=1) > RUNAWAY_BOUND
    return torch.where(runaway.view(-1, 1, 1, 1), torch.zeros_like(x), x)


def pick_device(name: str = "auto") -> torch.device:
    """cuda, then mps, then cpu; an explicit device that is missing is an error."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("device cuda was asked for but no CUDA GPU is available: use --device cpu or auto")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError("device mps was asked for but is not available: use --device cpu or auto")
    return torch.device(name)


@dataclass
class Progress:
    """What a callback receives after each iteration. `preview` is set every few iterations."""

    iteration: int
    total: int
    loss: float
    texture_loss: float
    overflow_loss: float
    seconds: float
    preview: object | None = None  # a PIL image of pool samples


@dataclass
class TrainResult:
    model: NCA
    config: TrainConfig
    loss_name: str
    iterations: int
    seconds: float
    device: str
    history: list[dict] = field(default_factory=list)
    stopped: bool = False
    rollbacks: int = 0


class Trainer:
    """Holds a run's state so it can stop, checkpoint and resume in the middle.

    On CUDA, after a first eager iteration and two warm-ups, every iteration replays
    as one CUDA graph (`graph_step.GraphedIteration`): at NCA sizes a GPU waits on
    kernel launches, not on arithmetic. Where capture fails it says so and steps
    eagerly; set `cuda_graph = False` to step eagerly anyway. Gradient
    checkpointing and `compile` step eagerly too: `compile = True` (set before
    the first step) runs the rollout through torch.compile on CUDA, its chunks
    replayed as CUDA graphs of their own, and the plain loop wherever compiling fails.
    """

    compile: bool = False
    cuda_graph: bool = True
    CHUNK = 8  # steps per call when not checkpointing
    GRAPHED_CHUNK = 16  # the same, compiled into CUDA graphs: fewer replays, each a longer compile

    def __init__(
        self,
        target: torch.Tensor,
        config: TrainConfig | None = None,
        vgg_features: torch.nn.Module | None = None,
        log: Callable[[str], None] = print,
    ) -> None:
        self.config = config or TrainConfig()
        self.log = log
        cfg = self.config
        self.device = pick_device(cfg.device)
        torch.manual_seed(cfg.seed)  # the loss's random directions draw from the global generator
        self.generator = torch.Generator().manual_seed(cfg.seed)  # pool sampling, steps
        self.mask_generator = torch.Generator(self.device).manual_seed(cfg.seed + 1)
        self.target = target.to(self.device)
        self.loss_fn, self.loss_name = build_loss(cfg.loss, self.target, vgg_features, log, cfg.match_weight)
        self.model = NCA(cfg.architecture).to(self.device)
        self.compute_dtype = training_dtype(self.device, cfg.precision)  # None: float32
        self.optimizer = make_optimizer(self.model.parameters(), cfg.lr, self.device)
        milestones = sorted({max(1, int(f * cfg.iters)) for f in cfg.lr_decay_at})
        self.scheduler = torch.optim.lr_scheduler.MultiStepLR(self.optimizer, milestones, gamma=0.3)
        self.pool = self.model.empty_grid(cfg.pool_size, cfg.size)
        self.iteration = 0
        self.seconds = 0.0
        self.history: list[dict] = []
        self.rollbacks = 0
        self.planned_iters = cfg.iters  # with a time budget, fitted to the measured speed as the run goes
        self._warm: tuple[int, float] | None = None  # (iteration, seconds) when the speed began to be measured
        self._last_good = self._snapshot()
        self.compiled = False  # whether the rollout runs compiled (set at the first rollout with `compile`)
        self._compiled_steps: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None
        self._graphed: GraphedIteration | None = None

    @property
    def path(self) -> str:
        """How iterations run now: "cuda graph", "compiled", or "eager"."""
        if self._graphed is not None and self._graphed.captured:
            return "cuda graph"
        return "compiled" if self.compiled else "eager"

    @property
    def compiles_on_gpu(self) -> bool:
        """`compile` asked for, on CUDA: the only place the compiled, graph-replayed rollout runs."""
        return self.compile and self.device.type == "cuda"

    # ------------------------------------------------------------------ the loop

    def rollout(self, x: torch.Tensor, steps: int) -> torch.Tensor:
        masks = draw_masks(x, steps, self.config.fire_rate, self.mask_generator)
        x = x.contiguous(memory_format=torch.channels_last)  # the layout every step returns: one compiled variant
        chunk = self._chunk()
        run = self._steps_fn(x, chunk)
        graphed = self.compiled and not self.config.grad_checkpoint
        for start in range(0, steps, chunk):
            part = masks[start : start + chunk]
            fn = run
            if len(part) < chunk:  # a short tail: no recompiling for it
                if graphed:  # padded with steps where no cell fires: x + 0 * update, the same numbers and gradients
                    part = torch.cat([part, part.new_zeros(chunk - len(part), *part.shape[1:])])
                else:
                    fn = self._plain_steps
            x = checkpoint(fn, x, part, use_reentrant=False) if self.config.grad_checkpoint else fn(x, part)
        return x

    def _plain_steps(self, x: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        return apply_steps(self.model, x, masks)

    def _chunk(self) -> int:
        """Steps per call; with checkpointing, the segment that needs least memory.

        Checkpointing keeps one state per segment (C channels) plus one segment's
        activations (about hidden + 2C channels a step), least at
        k = sqrt(steps * C / (hidden + 2C)): a few steps, not sqrt(steps). The
        recompute is one extra forward whatever k is.
        """
        if not self.config.grad_checkpoint:
            return self.GRAPHED_CHUNK if self.compiles_on_gpu else self.CHUNK
        c, h = self.model.channels, self.model.hidden
        best = math.sqrt(self.config.steps_max * c / (h + 2 * c))
        return 2 ** max(0, round(math.log2(best)))

    def _steps_fn(self, x: torch.Tensor, chunk: int) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        """The plain step loop, or once `compile` is set on CUDA, its compiled form (probed on a throwaway batch)."""
        if not self.compiles_on_gpu:
            return self._plain_steps
        if self._compiled_steps is None:

            def probe(fn: Callable) -> None:
                probe_x = torch.zeros_like(x, memory_format=torch.channels_last)
                masks = torch.ones(chunk, *probe_x[:, :1].shape, device=x.device)
                with self.autocast():
                    if self.config.grad_checkpoint:
                        out = checkpoint(fn, probe_x, masks, use_reentrant=False)
                    else:
                        out = fn(probe_x, masks)
                out.float().sum().backward()
                self.optimizer.zero_grad(set_to_none=True)

            # CUDA graphs replay recompute-free chunks only: checkpointing reruns a chunk inside backward
            mode = None if self.config.grad_checkpoint else "reduce-overhead"
            self.log("compiling the rollout for this GPU: the first iteration takes about half a minute")
            self._compiled_steps, self.compiled = compile_steps(self.model, probe, self.log, mode)
        return self._compiled_steps

    def autocast(self, cache: bool = True) -> torch.autocast:
        """The rollout's compute dtype (`TrainConfig.precision`); a no-op for float32. A graph capture needs `cache=False`."""
        dtype = self.compute_dtype or torch.bfloat16
        return torch.autocast(self.device.type, dtype=dtype, enabled=self.compute_dtype is not None, cache_enabled=cache)

    def random_damage(self) -> Damage:
        """The default damage (`render.Damage`: a circle of radius 1/4) at a random place; the grid wraps."""
        x, y = torch.rand(2, generator=self.generator).tolist()
        return Damage(x=x, y=y)

    def draw(self) -> Draw:
        """The iteration's random choices (pool samples, re-injection, damage, steps), from the run's generator.

        The samples are distinct, as in Growing NCA: with a repeat, which grown copy went
        back to the pool depended on thread timing, and a seed no longer repeated its run.
        """
        cfg = self.config
        idx = torch.randperm(cfg.pool_size, generator=self.generator)[: cfg.batch]  # distinct: a repeat would race when written back
        damage = self.random_damage() if cfg.damage_every and self.iteration % cfg.damage_every == 0 else None
        steps = int(torch.randint(cfg.steps_min, cfg.steps_max + 1, (1,), generator=self.generator))
        return Draw(idx=idx, reinject=self.iteration % 8 == 0, damage=damage, steps=steps)  # re-injection: keep learning to grow from empty

    def losses(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(loss, texture, overflow) of a grown batch: the texture loss's batch mean plus the weighted overflow penalty."""
        texture = self.loss_fn(to_rgb(x.float(), clamp=False)).mean()
        overflow = overflow_loss(x.float()) * self.config.overflow_weight
        return texture + overflow, texture, overflow

    def normalise_gradients(self) -> list[torch.Tensor]:
        """Each parameter's gradient scaled to unit norm, in place: steady steps at any loss scale."""
        grads = [p.grad for p in self.model.parameters() if p.grad is not None]
        for grad in grads:
            grad /= grad.norm() + 1e-8
        return grads

    def settle(self, x: torch.Tensor) -> torch.Tensor:
        """What a grown batch returns to the pool as: diverged samples reset to empty (`reset_runaways`)."""
        return reset_runaways(x)

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
        self.scheduler.step()
        self.iteration += 1
        if self.iteration % 10 == 0 and self._usable():
            self._last_good = self._snapshot()
        return {"loss": values[0], "texture": values[1], "overflow": values[2], "rolled_back": False}

    def _eager_step(self, draw: Draw) -> list[float]:
        """The iteration op by op: [loss, texture, overflow, finite (1.0 or 0.0)]; a non-finite one steps nothing."""
        idx = draw.idx.to(self.device)
        x = self.pool[idx]
        if draw.reinject:
            x[:1] = 0.0
        if draw.damage is not None:
            x[-1:] = apply_damage(x[-1:], draw.damage)
        if self.compiles_on_gpu:
            torch.compiler.cudagraph_mark_step_begin()  # last iteration's graph outputs are no longer needed
        with self.autocast():
            x = self.rollout(x, draw.steps)
        loss, texture, overflow = self.losses(x)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()  # a NaN loss gives NaN gradients: the one check below catches both
        grads = self.normalise_gradients()
        # The iteration's one host sync: the losses, and a NaN/inf guard on every gradient
        # (a normalised gradient's sum is finite exactly when all its entries are).
        values = torch.stack([loss.detach(), texture.detach(), overflow.detach(), *(g.sum() for g in grads)]).tolist()
        if not all(math.isfinite(v) for v in values):
            self.optimizer.zero_grad(set_to_none=True)
            return [*values[:3], 0.0]
        self.optimizer.step()
        with torch.no_grad():
            self.pool[idx] = self.settle(x.detach())
        return [*values[:3], 1.0]

    def _graphed_iteration(self) -> GraphedIteration | None:
        """The CUDA graph of the iteration, where it runs: CUDA, `cuda_graph`, no checkpointing or compile, Adam's state made."""
        if self._graphed is None:
            if not (self.cuda_graph and self.device.type == "cuda" and not self.config.grad_checkpoint
                    and not self.compile and self.optimizer.state):
                return None
            self._graphed = GraphedIteration(self)
        return None if self._graphed.failed else self._graphed

    def train(
        self,
        callback: Callable[[Progress], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        preview_every: int = 10,
        max_seconds: float | None = None,
    ) -> TrainResult:
        """Run until `config.iters`, a stop request, or `max_seconds` (for ZeroGPU chunks).

        Whatever ends the run, the model returned is the last good one.
        """
        stopped = False
        chunk_start = time.perf_counter()
        while self.iteration < self.planned_iters:
            if should_stop is not None and should_stop():
                stopped = True
                break
            if max_seconds is not None and time.perf_counter() - chunk_start > max_seconds:
                break
            if self.config.time_budget and self.seconds >= self.config.time_budget:
                self.planned_iters = self.iteration  # spent: the run is as long as it got
                break
            started = time.perf_counter()
            losses = self.train_step()
            self.seconds += time.perf_counter() - started
            if losses["rolled_back"]:
                if self.rollbacks > 20:
                    raise FloatingPointError("training hit NaN or inf more than 20 times; try a lower lr")
                continue
            self._fit_to_budget()
            self.history.append({"iteration": self.iteration, **{k: losses[k] for k in ("loss", "texture", "overflow")}})
            if callback is not None:
                show = self.iteration % preview_every == 0 or self.iteration == self.planned_iters
                callback(
                    Progress(
                        iteration=self.iteration,
                        total=self.planned_iters,
                        loss=losses["loss"],
                        texture_loss=losses["texture"],
                        overflow_loss=losses["overflow"],
                        seconds=self.seconds,
                        preview=self.preview() if show else None,
                    )
                )
        if self._usable():
            self._last_good = self._snapshot()
        else:
            self._restore(self._last_good)
        return self.result(stopped)

    @property
    def finished(self) -> bool:
        """The run has done its planned iterations, or spent its time budget."""
        return self.iteration >= self.planned_iters or bool(self.config.time_budget and self.seconds >= self.config.time_budget)

    def _fit_to_budget(self) -> None:
        """With a time budget, plan the iterations that fit the time left, and move the lr milestones with the plan."""
        budget = self.config.time_budget
        if not budget:
            return
        if self._warm is None:
            if self.iteration >= BUDGET_WARMUP:
                self._warm = (self.iteration, self.seconds)
            return
        rate = (self.iteration - self._warm[0]) / max(self.seconds - self._warm[1], 1e-9)
        self.planned_iters = max(self.iteration, min(self.config.iters, self.iteration + int((budget - self.seconds) * rate)))
        self.scheduler.milestones = fitted_milestones(self.scheduler.milestones, self.scheduler.last_epoch,
                                                      self.config.lr_decay_at, self.planned_iters)

    def result(self, stopped: bool = False) -> TrainResult:
        return TrainResult(
            model=self.model,
            config=self.config,
            loss_name=self.loss_name,
            iterations=self.iteration,
            seconds=self.seconds,
            device=str(self.device),
            history=self.history,
            stopped=stopped,
            rollbacks=self.rollbacks,
        )

    def preview(self, count: int = 4):
        """Pool samples side by side, as a PIL image."""
        with torch.no_grad():
            idx = torch.arange(min(count, self.config.pool_size), device=self.device)
            tiles = to_rgb(self.pool[idx].float())
            strip = torch.cat(list(tiles), dim=-1)
        return tensor_to_image(strip)

    # ------------------------------------------------------------------ safety

    def _params_finite(self) -> bool:
        return bool(torch.stack([torch.isfinite(p).all() for p in self.model.parameters()]).all())  # one sync

    def _usable(self) -> bool:
        """Finite weights that also grow a finite texture: the only kind kept as "last good" or saved."""
        return self._params_finite() and grows_finite(self.model)

    def _snapshot(self) -> dict:
        return {
            "model": copy.deepcopy(self.model.state_dict()),
            "optimizer": copy.deepcopy(self.optimizer.state_dict()),
            "iteration": self.iteration,
        }

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
        """Write the last good model plus what `resume` needs. Never pickles.

        Every file is replaced atomically (`atomic`), the resume state first and training.json last, so a
        process killed at any moment leaves a checkpoint that resumes; a failed write raises `SaveError`
        and leaves the files already there as they were.
        """
        global_rng = torch.get_rng_state()  # before building a model below draws from it
        folder = prepare_folder(folder)
        good = self._snapshot() if self._usable() else self._last_good
        model = NCA(self.model.config)
        model.load_state_dict(good["model"])
        tensors = {"pool": self.pool.detach().float().cpu().contiguous(),
                   "generator": self.generator.get_state(),
                   "mask_generator": self.mask_generator.get_state().cpu(),
                   "global_generator": global_rng}
        opt_state = good["optimizer"]["state"]
        for index, state in opt_state.items():
            for key, value in state.items():
                tensors[f"adam.{index}.{key}"] = value.detach().cpu().contiguous().reshape(value.shape)
        write_training_state(folder, tensors)
        write_model(model, folder)  # the folder was prepared above
        info = {
            "config": self.config.to_dict(),
            "loss": self.loss_name,
            "iterations": good["iteration"],
            "seconds": round(self.seconds, 2),
            "device": str(self.device),
            "precision": dtype_name(self.compute_dtype),
            "parameters": model.num_parameters,
            "rollbacks": self.rollbacks,
            "planned_iterations": self.planned_iters,
            "lr_milestones": sorted(self.scheduler.milestones.elements()),  # fitted to the plan when the run has a time budget
            "history": self.history,
        }
        write_json(folder, TRAINING_LOG, info)
        if target is not None:
            write_target(folder, target)
        return folder

    @classmethod
    def resume(
        cls,
        folder: str | Path,
        target: torch.Tensor,
        overrides: dict | None = None,
        vgg_features: torch.nn.Module | None = None,
        log: Callable[[str], None] = print,
    ) -> Trainer:
        """Continue a run saved by `save`; `overrides` may raise `iters` or change the device.

        A damaged checkpoint (truncated, emptied, keys missing) is a one-line `ConfigError` naming the file.
        """
        folder = Path(folder)
        info, tensors = read_checkpoint(folder)
        try:
            config = TrainConfig.from_dict({**info["config"], **(overrides or {})})
        except (ConfigError, TypeError, ValueError) as exc:
            raise damaged(folder / TRAINING_LOG, f"its settings: {exc}") from None
        trainer = cls(target, config, vgg_features, log)
        try:
            trainer.model.load_state_dict(load_folder(folder).state_dict())
        except ModelLoadError as exc:
            raise ConfigError(f"the model in {folder} does not load ({exc}); {RESUME_ADVICE}") from None
        if tensors["pool"].shape != trainer.pool.shape:
            raise ConfigError("the checkpoint's pool does not match size/pool_size; resume with the same settings")
        try:
            trainer.pool.copy_(tensors["pool"].to(trainer.device))
            trainer.generator.set_state(tensors["generator"])
            if trainer.device.type == "cpu":
                trainer.mask_generator.set_state(tensors["mask_generator"])
            torch.set_rng_state(tensors["global_generator"])
            opt_state = trainer.optimizer.state_dict()
            for index, param in enumerate(trainer.model.parameters()):
                keys = [k for k in tensors if k.startswith(f"adam.{index}.")]
                if keys:
                    state = {k.split(".", 2)[2]: tensors[k].to(trainer.device) for k in keys}
                    if set(state) != ADAM_KEYS or any(state[k].shape != param.shape for k in ("exp_avg", "exp_avg_sq")):
                        raise ValueError(f"the optimizer state of parameter {index} is incomplete or of the wrong shape")
                    state["step"] = state["step"].cpu()
                    opt_state["state"][index] = state
            trainer.optimizer.load_state_dict(opt_state)
        except (RuntimeError, ValueError, TypeError) as exc:
            raise damaged(folder / TRAINING_STATE, str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__) from None
        iteration = info["iterations"]
        if config.time_budget and _is_count_list(info.get("lr_milestones")) and isinstance(info.get("planned_iterations"), int):
            # a budgeted run's schedule was fitted to its measured speed: continue on it (the next fit moves what is ahead)
            trainer.scheduler.milestones = Counter(info["lr_milestones"])
            trainer.planned_iters = max(iteration, min(config.iters, info["planned_iterations"]))
        passed = sum(count for m, count in trainer.scheduler.milestones.items() if m <= iteration)
        for group in trainer.optimizer.param_groups:
            set_lr(group, config.lr * trainer.scheduler.gamma**passed)
        trainer.scheduler.last_epoch = iteration
        trainer.iteration = iteration
        trainer.seconds = float(info.get("seconds", 0.0))
        trainer.history = list(info.get("history", []))
        trainer.rollbacks = int(info.get("rollbacks", 0))
        trainer._last_good = trainer._snapshot()
        return trainer


ADAM_KEYS = {"step", "exp_avg", "exp_avg_sq"}


def _is_count_list(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)


def train(
    target: torch.Tensor,
    config: TrainConfig | None = None,
    callback: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    vgg_features: torch.nn.Module | None = None,
    log: Callable[[str], None] = print,
) -> TrainResult:
    """Train a new NCA on a target image (1, 3, H, W) in [0, 1]."""
    return Trainer(target, config, vgg_features, log).train(callback, should_stop)


