"""What decides a training run: `TrainConfig`, its ranges, and the recipe for each device.

Kept apart from the loop (`train`) so that the CLI's options, the studio's inputs, the card and a
checkpoint read the same settings without importing the trainer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import ClassVar

import torch

from .errors import UserError
from .losses import LOSS_NAMES, VGG_LOSSES
from .model import NCA, PRESETS, NCAConfig
from .precision import PRECISIONS


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
    start_from: str = ""  # the model whose rule the run starts from, as named (a folder, a Hub repo id, a studio label); "": the identity

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
        if not isinstance(self.start_from, str):
            raise ConfigError(f"start_from must be a model folder or Hub repo id, got {self.start_from!r}")
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
    def for_device(cls, device: str = "auto", start: NCAConfig | None = None, **chosen) -> TrainConfig:
        """The recipe for the device the run will use (`device_recipe`), with the user's own choices on top.

        With `start_from` among the choices, `start` is that model's architecture (`loading.load_start(...).config`),
        which the run keeps (`kept_architecture`).
        """
        recipe = device_recipe(pick_device(device), chosen.get("loss", "auto"), chosen.get("time_budget", 0.0))
        if chosen.get("start_from"):
            if start is None:
                raise ConfigError(f"a run that starts from {chosen['start_from']} keeps its architecture: pass it as start")
            chosen = {**chosen, **kept_architecture(chosen, start)}
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


def preset_of(architecture: NCAConfig) -> str | None:
    """The preset of a model's size (channels and hidden units), None for a size no preset has."""
    return next((p for p, size in PRESETS.items() if (size.channels, size.hidden) == (architecture.channels, architecture.hidden)), None)


def kept_architecture(chosen: dict, start: NCAConfig) -> dict:
    """The preset, perception and fire rate of `start`, the architecture of the model `chosen["start_from"]` names.

    A rule keeps its architecture, which is what lets a model and its child be blended; so a different one
    asked for in `chosen` is refused, and so is a model of no preset's size (the run could not record it).
    """
    name = chosen["start_from"]
    preset = preset_of(start)
    if preset is None:
        sizes = ", ".join(f"{p} {size.channels}/{size.hidden}" for p, size in PRESETS.items())
        raise ConfigError(f"{name} has {start.channels} channels and {start.hidden} hidden units, the size of no preset "
                          f"({sizes}): a run can start only from a model of a preset's size")
    kept = {"preset": preset, "perception": start.perception, "fire_rate": start.fire_rate}
    for field, value in kept.items():
        if field in chosen and chosen[field] != value:
            raise ConfigError(f"{name} is a {preset} rule with {start.perception} perception and fire rate {start.fire_rate:g}, and a run "
                              f"started from it keeps that architecture: leave out {field} {chosen[field]}, or train a new rule instead "
                              f"of starting from {name}")
    return kept


GPU_RECIPE = {"iters": 3000, "batch": 8, "pool_size": 256, "match_weight": 0.02, "time_budget": 60.0}
VGG_RECIPE = {"lr": 1e-3, "iters": 2000, "time_budget": 0.0}  # Self-Organising Textures: 5,000 at 1e-3; DyNCA: 2,000 at 1e-3
# A CPU run given a few minutes: a small rule on a small grid with shorter rollouts takes about 8x as many iterations
# into the time as the defaults, at twice the lr, decayed later (RESEARCH.md, 2026-12-06: "the first minute").
SHORT_RECIPE = {"preset": "fast", "size": 32, "steps_min": 24, "steps_max": 64, "lr": 4e-3, "lr_decay_at": (0.6, 0.85)}
SHORT_BUDGET = 300.0  # seconds: a CPU time budget up to this takes SHORT_RECIPE


def device_recipe(device: torch.device, loss: str = "auto", time_budget: float = 0.0) -> dict:
    """Settings that differ from TrainConfig's CPU defaults on this device, for this loss and time budget.

    A CPU keeps the defaults (500 iterations fit 15 minutes on 2 idle cores), unless the run
    has a time budget of `SHORT_BUDGET` or less: then it takes `SHORT_RECIPE`, which grows a
    photo's colours and grain in a minute where the defaults grow noise. On a CUDA GPU
    iterations are cheap and buy structure, so the run is longer, wider and matches
    patches, within a minute.
    A VGG loss asked for by name trains as its references did: lr 1e-3 for at least
    2,000 iterations, with no time budget to cut it short; patch matching is not its.
    """
    recipe = dict(GPU_RECIPE) if device.type == "cuda" else {}
    if device.type == "cpu" and 0 < time_budget <= SHORT_BUDGET and loss not in VGG_LOSSES:
        recipe.update(SHORT_RECIPE)
    if loss in VGG_LOSSES:
        recipe.pop("match_weight", None)
        recipe.update(VGG_RECIPE, iters=max(VGG_RECIPE["iters"], recipe.get("iters", 0)))
    return recipe


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
