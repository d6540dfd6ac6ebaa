"""The studio's inputs: their ranges, and the Train tab's settings as one object that builds the run's `TrainConfig`.

The sliders are built from these ranges, the handlers check against them, and
the API check reads them back from the sliders, so the three never disagree.
The Train ranges are `TrainConfig.RANGES`, narrowed here on purpose (see
`narrowed`). Nothing here imports gradio: a bad value raises `SettingError`,
which the studio shows as one line.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from .errors import UserError
from .losses import VGG_LOSSES
from .model import NCAConfig
from .train import TrainConfig


class SettingError(UserError, ValueError):
    """A studio input out of range or of the wrong kind; the message names the field and what it takes."""


def narrowed(name: str, highest: float) -> tuple:
    """`TrainConfig.RANGES[name]` with a lower top, which must lie inside the library's own range.

    The studio trains while a browser tab waits on it and other visitors queue behind it, so it
    offers less than the library takes: longer and larger runs belong to `nca train`.
    """
    low, high = TrainConfig.RANGES[name]
    if not low <= highest <= high:
        raise ValueError(f"the studio's top for {name}, {highest}, is outside TrainConfig's range {low}..{high}")
    return low, type(high)(highest)


# The studio's inputs, as (lowest, highest): the sliders are built from these and the handlers check against them.
TRAIN_ITERATIONS = narrowed("iters", 5000)
TRAIN_SIZES = narrowed("size", 128)  # a larger grid trains too slowly for a page that waits on it
TIME_LIMITS = narrowed("time_budget", 3600)  # seconds: an hour at most in a shared studio
CANVAS_SIDES = (32, 1024)
RENDER_STEPS = (10, 4000)
HEALING_STEPS = (10, 2000)
FRAME_RATES = (5, 60)
SEEDS = (0, 2**31 - 1)
DAMAGE_SIZES = (0.02, 0.5)

# The "Whole objects" choice: how hard patch matching pulls towards copies of the image. No one weight fits
# every texture, and more fades the colours.
OBJECT_STRENGTHS = {"off": 0.0, "light": 0.01, "medium": 0.02, "strong": 0.04}
STRENGTH_NAMES = {weight: name for name, weight in OBJECT_STRENGTHS.items()}
HEALING_DAMAGE_EVERY = 4  # "Practise healing": a random hole every 4th iteration
STUDIO_PRESET = "fast"  # the Train tab's model size at first: a model in minutes on a CPU
STUDIO_CPU_ITERS = 300  # a first model in about 9 minutes on 2 CPU cores; the GPU recipe's own iterations elsewhere
NO_START = "nothing (a new rule)"  # the Train tab's "Start from" for a rule that starts blank (the identity)


def whole(name: str, value: Any, bounds: tuple[float, float]) -> int:
    """A whole number in range from a slider or an API call, else a SettingError that says the range."""
    low, high = bounds
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value) or not low <= value <= high:
        raise SettingError(f"{name} must be a whole number from {low:g} to {high:g}, got {value!r}")
    return int(value)


def fraction(name: str, value: Any, bounds: tuple[float, float] = (0.0, 1.0)) -> float:
    """A number in range (a position or size as a fraction of the canvas), else a SettingError that says the range."""
    low, high = bounds
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise SettingError(f"{name} must be a number from {low:g} to {high:g}, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class StudioTrainSettings:
    """The Train tab's settings, in the order of its inputs; their names are the /train API's parameter names.

    `config()` is the one place where they become a `TrainConfig`.
    """

    preset: str = STUDIO_PRESET
    loss: str = "auto"
    iterations: int = STUDIO_CPU_ITERS
    size: int = 64
    isotropic: bool = False
    objects: str = "off"
    practise_healing: bool = False
    time_limit: float = 0
    start_from: str = NO_START  # a model's label in the session's model lists: the run starts from its rule and keeps its architecture

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    @classmethod
    def for_recipe(cls, recipe: dict) -> StudioTrainSettings:
        """What the Train tab shows first: the fast preset, with the iterations, objects and time limit of this device's recipe."""
        return cls(
            iterations=recipe.get("iters", STUDIO_CPU_ITERS), objects=STRENGTH_NAMES.get(recipe.get("match_weight", 0.0), "off"),
            time_limit=recipe.get("time_budget", 0),
        )

    @classmethod
    def in_order(cls, inputs: dict[str, Any]) -> dict[str, Any]:
        """`inputs` (one per setting, keyed by its name) in the settings' order; a missing or unknown name is a bug here."""
        if set(inputs) != set(cls.names()):
            raise ValueError(f"the Train settings are {cls.names()}, got {sorted(inputs)}")
        return {name: inputs[name] for name in cls.names()}

    @property
    def starts_blank(self) -> bool:
        return self.start_from == NO_START

    def config(self, device: str = "auto", start: NCAConfig | None = None) -> TrainConfig:
        """The run these settings describe: the studio's own choices on top of the recipe for the device.

        With a start model (`start_from`, a label; `start`, its architecture), Model size and Round shapes are the start
        model's, whatever the controls say: the rule keeps its architecture (`train_config.kept_architecture`).
        """
        if not isinstance(self.start_from, str) or not self.start_from:
            raise SettingError(f"Start from must be {NO_START!r} or a model's name, got {self.start_from!r}")
        if self.objects not in OBJECT_STRENGTHS:
            raise SettingError(f"Whole objects must be one of {', '.join(OBJECT_STRENGTHS)}, got {self.objects!r}")
        if self.objects != "off" and self.loss in VGG_LOSSES:  # TrainConfig refuses it too, in its own words, not the studio's
            raise SettingError("Whole objects works with the patch loss: choose Loss auto or patch, or set Whole objects to off.")
        chosen = {
            "preset": self.preset, "loss": self.loss, "iters": whole("Iterations", self.iterations, TRAIN_ITERATIONS),
            "size": whole("Training size", self.size, TRAIN_SIZES), "perception": "isotropic" if self.isotropic else "sobel",
            "match_weight": OBJECT_STRENGTHS[self.objects], "damage_every": HEALING_DAMAGE_EVERY if self.practise_healing else 0,
            "time_budget": float(whole("Time limit", self.time_limit or 0, TIME_LIMITS)),
        }
        # A slider left at its first value is no choice: with a time limit, the recipe for it sets the grid (a short
        # limit on a CPU trains on 32 cells, `train_config.SHORT_RECIPE`) and the limit, not 300 iterations, ends the run.
        defaults = StudioTrainSettings()
        if chosen["time_budget"] and self.size == defaults.size:
            del chosen["size"]
        if chosen["time_budget"] and self.iterations == defaults.iterations:
            del chosen["iters"]
        if not self.starts_blank:
            del chosen["preset"], chosen["perception"]
            chosen["start_from"] = self.start_from
        return TrainConfig.for_device(device, start=start, **chosen)

    def traits(self, config: TrainConfig) -> str:
        """What a model trained with `config` (these settings') says in its label beyond its preset:
        ' · round · light objects · heals · fine-tuned', or ''. Round shapes as the run had them, which a start model decides."""
        return (" · round" if config.perception == "isotropic" else "") + ("" if self.objects == "off" else f" · {self.objects} objects") + (
            " · heals" if self.practise_healing else ""
        ) + ("" if self.starts_blank else " · fine-tuned")
