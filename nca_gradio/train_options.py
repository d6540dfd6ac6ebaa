"""The options that choose a training run, as `nca train` spells them: one definition for the command line and the card.

`nca train` and `nca train-many` add them to their parsers, and a model card's "train it again" line reads each
setting's flag back from a parser built here, so the card can never name a flag the command does not take. Every
option's `dest` is the `TrainConfig` field it sets; an option left out (None) takes the device's recipe.
"""

from __future__ import annotations

import argparse

from .losses import LOSS_NAMES
from .model import PERCEPTIONS, PRESETS, NCAConfig, preset_label
from .precision import PRECISIONS
from .studio_settings import STUDIO_CPU_ITERS, STUDIO_PRESET
from .train_config import GPU_RECIPE, SHORT_BUDGET, SHORT_RECIPE, VGG_RECIPE, ConfigError, TrainConfig

DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600}


def parse_duration(text: str) -> float:
    """Seconds from `90`, `90s`, `1.5m` or `1h` (argparse type for --time)."""
    number, unit = text.strip().lower()[:-1], text.strip().lower()[-1:]
    if unit.isdigit() or unit == ".":
        number, unit = text.strip(), ""
    try:
        seconds = float(number) * DURATION_UNITS[unit]
    except (KeyError, ValueError):
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration: write seconds (90, 90s) or minutes (2m) or hours (1h)") from None
    if not 0 < seconds < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive duration")
    return seconds


def presets_help(default: str) -> str:
    """--preset's help: every model size in the studio's words, and why the studio starts at another one."""
    sizes = "; ".join(preset_label(name) for name in PRESETS)
    return (f"model size: {sizes} (default {default}, and {SHORT_RECIPE['preset']} with --time {SHORT_BUDGET:g}s or less on a CPU; "
            f"the studio starts at {STUDIO_PRESET} with {STUDIO_CPU_ITERS} iterations on a CPU, so that a first model comes "
            "in minutes)").replace("%", "%%")


def add_training_options(parser: argparse.ArgumentParser) -> None:
    """Add the options that set `TrainConfig` fields, in the order `nca train --help` lists them."""
    defaults = TrainConfig()
    parser.add_argument("--preset", choices=list(PRESETS), help=presets_help(defaults.preset))
    parser.add_argument("--perception", choices=list(PERCEPTIONS),
                        help="isotropic: the model has no sense of direction; try it for scattered round things on a plain ground "
                        f"(stars, dots, bubbles); dense ones (pebbles, beans) come out as mazes (default {defaults.perception})")
    parser.add_argument("--fire-rate", type=float, metavar="P",
                        help="the chance that a cell updates at each step: lower makes growth slower and less synchronised "
                        f"(default {defaults.fire_rate:g}; with --from, that model's)")
    parser.add_argument("--from", dest="start_from", metavar="MODEL",
                        help="start from this model's rule (a folder or Hub repo id, as nca grow takes them) instead of a blank one: "
                        "the new model keeps its architecture (model size, perception), so the two can be blended")
    parser.add_argument("--loss", choices=list(LOSS_NAMES), default=defaults.loss, help="auto: ot with pretrained VGG16, else patch")
    parser.add_argument("--match", type=float, metavar="WEIGHT", dest="match_weight",
                        help="patch loss: pull patches towards real ones of the target so objects keep more of their outlines "
                        "(brick joints); try 0.01 to 0.04: more keeps shapes, less keeps colours; about 40%% slower "
                        f"(default 0: off on a CPU, {GPU_RECIPE['match_weight']} on a GPU)")
    parser.add_argument("--damage-every", type=int, default=defaults.damage_every, metavar="N",
                        help="every Nth iteration erase a random circle in one training grid, so the model practises healing: "
                        "try 4 if your texture blows up where it is damaged (default 0: off)")
    parser.add_argument("--iters", type=int, help=f"iterations in all, at most; with --resume, counting those done (default {defaults.iters} on a CPU, "
                        f"{GPU_RECIPE['iters']} on a GPU)")
    parser.add_argument("--time", type=parse_duration, metavar="SECONDS", dest="time_budget",
                        help="train for this long (90, 90s, 2m, 1h; with --resume, from the resume): iterations and lr schedule "
                        f"fit the measured speed, at most --iters (default: no limit on a CPU, {GPU_RECIPE['time_budget']:g}s on a GPU); "
                        f"on a CPU, {SHORT_BUDGET:g}s or less trains a smaller model on a smaller grid with shorter rollouts and "
                        "a higher lr, unless you set those")
    parser.add_argument("--size", type=int, help=f"training grid side in cells (default {defaults.size}; {SHORT_RECIPE['size']} with --time {SHORT_BUDGET:g}s or less on a CPU)")
    parser.add_argument("--target-size", type=int, default=defaults.target_size, help="side the image is resized to")
    parser.add_argument("--batch", type=int, help=f"grids per iteration (default {defaults.batch} on a CPU, {GPU_RECIPE['batch']} on a GPU)")
    parser.add_argument("--pool-size", type=int,
                        help="grids kept between iterations: fewer are grown for longer, which steadies long rollouts "
                        f"(default {defaults.pool_size} on a CPU, {GPU_RECIPE['pool_size']} on a GPU)")
    parser.add_argument("--lr", type=float, help=f"learning rate (default {defaults.lr:g}; {VGG_RECIPE['lr']:g} for the VGG losses ot and gram)")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--device", default=defaults.device, help="auto, cpu, cuda or mps")
    parser.add_argument("--grad-checkpoint", action="store_true", help="less memory for long rollouts, a little slower")
    parser.add_argument("--precision", choices=PRECISIONS, default=defaults.precision,
                        help="the rollout's arithmetic: auto is bfloat16 on CUDA, else float32; bfloat16 on a CPU with "
                        "bfloat16 units (Intel AMX, AVX512-BF16) trains about 1.5x faster, but its textures may come out worse")


def training_flags() -> dict[str, str]:
    """Each `TrainConfig` field these options set, with its flag (`match_weight`: `--match`), in the order of the help."""
    parser = argparse.ArgumentParser(add_help=False)
    add_training_options(parser)
    return {action.dest: max(action.option_strings, key=len) for action in parser._actions}


def config_from_args(args: argparse.Namespace, start: NCAConfig | None = None) -> TrainConfig:
    """The run the parsed options describe: the options given, the rest from the recipe of the device asked for.

    `start`: the architecture of the model --from names, which the run keeps (`TrainConfig.for_device`).
    """
    flags = training_flags()
    chosen = {name: getattr(args, name) for name in flags if name != "device"}
    try:
        return TrainConfig.for_device(args.device, start, **{name: value for name, value in chosen.items() if value is not None})
    except ConfigError as exc:  # "match_weight must be ..." said as the option the user typed: "--match must be ..."
        name, space, rest = str(exc).partition(" ")
        raise ConfigError(f"{flags[name]} {rest}" if space and name in flags else str(exc)) from None
