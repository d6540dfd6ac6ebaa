"""The computations behind the Gradio studio: training cut into ZeroGPU calls, renders, healing measured and judged.

`ui.py` wires components to what is here and to the rest of the library (the
session's files are `workspace`, the Heal tab's damage spots `damage`, the
inputs' ranges `studio_settings`), so every computation the studio shows can be
tested without a browser, and nothing here imports gradio. The functions that
need a GPU take paths and plain tensors and return CPU objects, so that on
ZeroGPU, where `spaces.GPU` runs them in another process, their arguments and
results can travel. Training itself is `run.TrainingRun`; here it is only cut
into ZeroGPU calls, each stopped through a file that SIGTERM also reaches.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import render
from .checkpoint import has_checkpoint
from .graft import GraftWith, rules
from .images import ImageError, image_to_tensor
from .losses import PatchLoss, covariance_root, shaped_directions
from .quality import FLOOR_EPS, PATCH_SIZE, score, sliced_distance
from .render import HEAL_GRIDS, MAX_FRAME_BYTES, Damage, RenderError, Rollout, frame_of, grow
from .run import StopRequest, TrainingRun, stops_on_sigterm
from .studio_settings import CANVAS_SIDES, RENDER_STEPS
from .train import Status, TrainConfig, pick_device
from .verdict import LEARNED, judge

MAX_CANVAS, MAX_RENDER_STEPS = CANVAS_SIDES[1], RENDER_STEPS[1]
CPU_CELL_STEPS = 256 * 256 * 512  # about a minute of the texture preset on a 2-core CPU
GPU_CELL_STEPS = MAX_CANVAS * MAX_CANVAS * MAX_RENDER_STEPS
MAX_FRAMES = 200
ZERO_GPU_CHUNK_SECONDS = 50  # training per ZeroGPU call; the call is granted a little more
UPDATE_SECONDS = 2.0  # how often training reports to the page


# ------------------------------------------------------------------ ZeroGPU


def on_zero_gpu() -> bool:
    """True on a Hugging Face ZeroGPU Space, where a GPU is lent per decorated call."""
    return os.environ.get("SPACES_ZERO_GPU", "").lower() in ("1", "t", "true")


def gpu(duration: int) -> Callable[[Callable], Callable]:
    """`spaces.GPU(duration=...)` where the `spaces` package is installed (a no-op off ZeroGPU), else nothing."""
    try:
        import spaces
    except ImportError:
        return lambda fn: fn
    return spaces.GPU(duration=duration)


# ------------------------------------------------------------------ training


def train_chunk(
    folder: Path, target: torch.Tensor, config: TrainConfig, stop_file: Path, seconds: float | None = None,
    update_seconds: float = UPDATE_SECONDS, start: Path | None = None,
) -> Iterator[Status]:
    """Train for up to `seconds` (None: to the end), reporting every `update_seconds`; continues the folder's checkpoint.

    A run (`run.TrainingRun`) saves before its last status is yielded and writes the card when it ends,
    so whoever reads that status finds the model and its card on disk. `start`: the folder of the model
    `config.start_from` names (a label), which only a fresh run reads.
    """
    quiet = lambda message: None
    run = TrainingRun.open(folder, target, config, resume=has_checkpoint(folder), overrides={"iters": config.iters, "device": config.device},
                           log=quiet, stop=StopRequest(stop_file), start=start)
    yield from run.updates(seconds=seconds, every=update_seconds, previews=True, card=True)


_zero_gpu_chunk = gpu(duration=ZERO_GPU_CHUNK_SECONDS + 25)(train_chunk)


def train_stream(
    folder: Path, target: torch.Tensor, config: TrainConfig, stop_file: Path, chunk_seconds: float | None = None,
    start: Path | None = None,
) -> Iterator[Status]:
    """Train to the end or until stopped. With `chunk_seconds` (ZeroGPU) it runs as resumable GPU calls.

    SIGTERM reaches a chunk in another process through its stop file, registered here in the process that gets the signal.
    `start`: the start model's folder (`train_chunk`).
    """
    run_chunk = _zero_gpu_chunk if chunk_seconds else train_chunk
    with stops_on_sigterm(StopRequest(stop_file)):
        while True:
            update = None
            for update in run_chunk(folder, target, config, stop_file, chunk_seconds, start=start):
                yield update
            if update is None or update.finished or update.stopped:
                return


def texture_term(entry: dict) -> float:
    """An iteration's texture loss (histories written before it was recorded have only the total)."""
    return float(entry.get("texture", entry["loss"]))


def readable(value: float | None) -> str:
    """A loss for people: three significant digits, thousands as k and millions as M (0.612, 340, 12.3k, 4.5M)."""
    if value is None or not np.isfinite(value):
        return "–" if value is None else str(value)
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.3g}"


def duration(seconds: float) -> str:
    """12 s, 3 min 20 s, 1 h 05 min."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def loss_table(history: list[dict]):
    """The training curve as a DataFrame for a line plot: the texture loss as log10 (it spans decades).

    The overflow penalty (spikes of thousands while the rule learns to keep its
    cells in range) is left out of the curve and shown in the tooltip, beside the texture loss in plain digits.
    """
    import pandas as pd

    rows = [
        (h["iteration"], float(np.log10(max(texture_term(h), 1e-12))), readable(texture_term(h)), readable(h.get("overflow")))
        for h in history
        if np.isfinite(texture_term(h))
    ]
    columns = ["iteration", "log10 texture loss", "texture loss", "overflow"]
    return pd.DataFrame(rows, columns=columns).astype({"iteration": "int64", "log10 texture loss": "float64"})  # typed even when empty, so the plot's axes are numeric from the start


# ------------------------------------------------------------------ rendering


def render_device() -> torch.device:
    return pick_device("auto")


def most_steps(size: int, grids: int = 1, device: torch.device | None = None) -> int:
    """The most steps this machine renders at `size` pixels a side for `grids` grids at once (at least 1)."""
    device = device or render_device()
    budget = CPU_CELL_STEPS if device.type == "cpu" else GPU_CELL_STEPS
    return max(1, min(MAX_RENDER_STEPS, budget // (size * size * grids)))


def most_heal_steps(size: int, device: torch.device | None = None) -> int:
    """The most healing steps that fit on a grid of `size`, counting the twin and the lead steps shown before the damage."""
    most = most_steps(size, HEAL_GRIDS, device)
    steps = most
    while steps > 1 and steps + lead_steps(frame_every(steps, size), steps) > most:
        steps -= 1
    return steps


def check_render(size: int, steps: int, device: torch.device | None = None, grids: int = 1) -> None:
    """Refuse a render that is too much work for this machine (the studio's handlers check the ranges of its inputs)."""
    device = device or render_device()
    most = most_steps(size, grids, device)
    if steps > most:
        where = "on this CPU" if device.type == "cpu" else "here"
        raise RenderError(
            f"{size}x{size} cells for {steps} steps is too much work {where}: use at most {most} steps at this size, "
            f"or a smaller canvas"
        )


def frame_every(steps: int, size: int, max_frames: int = MAX_FRAMES, max_bytes: int = MAX_FRAME_BYTES) -> int:
    """Keep every k-th step as a frame, so a video has at most `max_frames` frames and fits in memory."""
    by_bytes = max(2, max_bytes // (3 * size * size))
    return max(1, -(-steps // min(max_frames, by_bytes)))


def on_cpu(rollout: Rollout) -> Rollout:
    """The same rollout with its grid moved to the CPU (frames are already numpy), so it can leave a GPU worker."""
    return replace(rollout, state=rollout.state.cpu())


def rule_grids(graft: GraftWith | None) -> int:
    """What a render costs in grids of one rule: a graft computes both rules in every cell."""
    return 2 if graft else 1


@gpu(duration=90)
def grow_texture(
    folder: Path, size: int, steps: int, every: int, seed: int = 0, on_frame: Callable[[int, torch.Tensor], None] | None = None,
    graft: GraftWith | None = None,
) -> Rollout:
    """Grow the model in `folder` (grafted with a second rule, if given) from an empty size x size grid, on the best device."""
    return on_cpu(grow(rules(folder, render_device(), graft), size, steps, every, seed, on_frame=on_frame))


@dataclass
class Healing:
    """A damaged grid's rollout, and the frames of its undamaged twin at the same steps: the level "healed" returns to."""

    rollout: Rollout
    undamaged: list[np.ndarray]


@gpu(duration=90)
def heal(
    folder: Path,
    state: torch.Tensor,
    damage: Damage,
    steps: int,
    every: int,
    seed: int = 0,
    on_frame: Callable[[int, torch.Tensor], None] | None = None,
    graft: GraftWith | None = None,
) -> Healing:
    """Let a grown grid live for a few frames, erase the damaged region, and run `steps` steps of healing beside an undamaged twin."""
    device = render_device()
    twin = [frame_of(state)]

    def keep_twin(step: int, x: torch.Tensor) -> None:
        twin.append(frame_of(x[1:]))
        if on_frame is not None:
            on_frame(step, x[:1])

    rollout = render.heal(rules(folder, device, graft), damage, grow_steps=lead_steps(every, steps), heal_steps=steps, every=every,
                          seed=seed, state=state.to(device), on_frame=keep_twin, twin=True)
    return Healing(replace(rollout, state=rollout.state[:1].cpu()), twin)


def lead_steps(every: int, steps: int) -> int:
    """How long the intact texture is shown before the damage: four frames (the damage lands at step lead + 1)."""
    return min(4 * every, steps)


# ------------------------------------------------------------------ healing, measured


def _downscale(image: torch.Tensor, side: int) -> torch.Tensor:
    h, w = image.shape[-2:]
    scale = min(1.0, side / max(h, w))
    if scale == 1.0:
        return image
    return F.adaptive_avg_pool2d(image, (max(1, round(h * scale)), max(1, round(w * scale))))


DAMAGED, UNDAMAGED = "damaged", "undamaged twin"
HEALED_MARGIN = 1.1  # healed: within 10% of the twin's level, plus a fifth of the twin's own largest drift, both curves
HEALED_SPREAD = 0.2  # smoothed over three frames (the frame-to-frame wobble of a living texture is about that size)


@torch.no_grad()
def heal_curve(
    rollout: Rollout, reference: np.ndarray, undamaged: list[np.ndarray] | None = None, side: int = 96, points: int = 80,
    projections: int = 64, batch: int = 16,
):
    """The texture loss of each frame against the undamaged texture, as a DataFrame (step, texture loss, grid).

    The patch loss compares patch statistics, not pixels, so a region that
    regrows differently but looks right scores as healed. Frames are scaled to
    at most `side` pixels (about 2 s for 80 frames on one CPU core), every patch is used,
    and every frame is measured along the same random directions, so the curve moves only when the texture does.
    With the `undamaged` twin's frames (`heal`), a second series gives the level the living texture drifts to
    by itself: the damaged curve has healed where it meets it.
    """
    import pandas as pd

    reference_image = _downscale(frame_to_tensor(reference), side)
    every_patch = reference_image.shape[-1] * reference_image.shape[-2]  # no subsampling: identical frames score 0
    loss = PatchLoss(reference_image, projections=projections, max_target_patches=every_patch, max_samples=every_patch)
    picks = np.unique(np.linspace(0, len(rollout.frames) - 1, min(points, len(rollout.frames))).round().astype(int))

    def measure(frames: list[np.ndarray]) -> list[float]:
        values: list[float] = []
        for start in range(0, len(picks), batch):
            images = torch.cat([_downscale(frame_to_tensor(frames[i]), side) for i in picks[start : start + batch]])
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                values.extend(loss(images).tolist())
        return values

    steps = [rollout.steps[i] for i in picks]
    series = [(DAMAGED, rollout.frames)] + ([(UNDAMAGED, undamaged)] if undamaged is not None else [])
    return pd.concat(
        [pd.DataFrame({"step": steps, "texture loss": measure(frames), "grid": name}) for name, frames in series], ignore_index=True
    )


HEALED_RATIO = 1.6  # the erased region is as close to its twin's as this many times two regions of the twin are to each other
DRIFT_RATIO = 2.0  # the twin moved this many times the grown texture's own variation from its first frame: it drifts by itself
REGION_SIDE, REGION_SAMPLES, REGION_PROJECTIONS, REGION_POINTS = 128, 8_000, 64, 8


@dataclass(frozen=True)
class HealVerdict:
    """What healing did, judged in the erased region of the last frame against the same region of the undamaged twin."""

    healed: bool
    sentence: str
    healed_at: int | None = None  # the step (counted from the start of growth) from which the region stays healed
    region: float | None = None  # the last frame's region ratio (`region_ratio`): about 1 healed, large where it did not grow back
    drift: float | None = None  # the twin's distance from its first frame over the texture's own variation (`drift_ratio`)


def _pixel_patches(frame: np.ndarray) -> torch.Tensor:
    """One 7x7 patch per pixel (N, 147) of a frame scaled to at most `REGION_SIDE`, on the torus the texture lives on."""
    image = _downscale(frame_to_tensor(frame), REGION_SIDE)
    half = PATCH_SIZE // 2
    return F.unfold(F.pad(image, (half,) * 4, mode="circular"), PATCH_SIZE)[0].T


def _sampled(patches: torch.Tensor, where: torch.Tensor, seed: int) -> torch.Tensor:
    """At most `REGION_SAMPLES` of the patches where `where` (N,) holds, drawn with a fixed seed so a measure repeats."""
    chosen = patches[where]
    if len(chosen) <= REGION_SAMPLES:
        return chosen
    return chosen[torch.randperm(len(chosen), generator=torch.Generator().manual_seed(seed))[:REGION_SAMPLES]]


def _directions(patches: torch.Tensor) -> torch.Tensor:
    return shaped_directions(covariance_root(patches), REGION_PROJECTIONS, torch.device("cpu"), torch.Generator().manual_seed(0))


def _region_mask(frame: np.ndarray, damage: Damage) -> torch.Tensor:
    """The erased region at the scale `_pixel_patches` works at, flattened (N,) as booleans."""
    height, width = _downscale(frame_to_tensor(frame), REGION_SIDE).shape[-2:]
    return damage.mask(height, width)[0, 0].flatten().bool()


def region_ratio(damaged: np.ndarray, twin: np.ndarray, damage: Damage, proj: torch.Tensor | None = None) -> float:
    """How far the erased region's patches are from the twin's in the same region, over how far two regions of the twin are apart.

    About 1 where the region grew back into the texture (a regrown texture differs in its pixels, not its patches);
    large where it is empty, pale or scarred. A mask covering the whole canvas has nothing to compare with: infinity.
    `proj`: directions (`_directions`) shared by several measures of one healing.
    """
    inside = _region_mask(twin, damage)
    if inside.all() or not inside.any():
        return float("inf")
    twin_patches, damaged_patches = _pixel_patches(twin), _pixel_patches(damaged)
    proj = _directions(twin_patches) if proj is None else proj
    twin_in, twin_out = _sampled(twin_patches, inside, 1), _sampled(twin_patches, ~inside, 2)
    return sliced_distance(_sampled(damaged_patches, inside, 1), twin_in, proj) / max(sliced_distance(twin_in, twin_out, proj), FLOOR_EPS)


def drift_ratio(first: np.ndarray, last: np.ndarray) -> float:
    """How far the undamaged texture moved from its first frame, over how far the first frame's two halves are apart."""
    start, end = _pixel_patches(first), _pixel_patches(last)
    proj = _directions(start)
    width = _downscale(frame_to_tensor(first), REGION_SIDE).shape[-1]
    left = (torch.arange(len(start)) % width) < width // 2
    floor = sliced_distance(_sampled(start, left, 1), _sampled(start, ~left, 2), proj)
    return sliced_distance(_sampled(end, torch.ones(len(end), dtype=torch.bool), 3), _sampled(start, torch.ones(len(start), dtype=torch.bool), 4),
                           proj) / max(floor, FLOOR_EPS)


def heal_verdict(healing: Healing, damage: Damage, damaged_at: int, grown_steps: int = 0, target: torch.Tensor | None = None) -> HealVerdict:
    """Whether the erased region grew back, judged on the last frames, not on the whole frame's curve.

    No "healed" for a model that has not learned its target (`verdict.judge` of the twin's last frame, with `target`),
    nor for one whose undamaged twin drifts from its first frame: a damaged copy of a drifting texture returns to
    nothing in particular. `damaged_at` counts rollout steps; the step named is counted from the start of growth.
    """
    frames, steps, twin = healing.rollout.frames, healing.rollout.steps, healing.undamaged
    if target is not None:
        learned = _learned(twin[-1], target)
        if learned is not None:
            return HealVerdict(False, f"healing cannot be judged: the texture itself is {learned}")
    drift = drift_ratio(twin[0], twin[-1])
    if drift > DRIFT_RATIO:
        return HealVerdict(False, "healing cannot be judged: the texture drifts by itself (its undamaged twin moved away from "
                                  f"what was grown, {drift:.1f} times its own variation)", drift=drift)
    after = [i for i, step in enumerate(steps) if step >= damaged_at]
    picks = sorted({after[round(k * (len(after) - 1) / (REGION_POINTS - 1))] for k in range(REGION_POINTS)}) if after else []
    proj = _directions(_pixel_patches(twin[0]))
    ratios = [region_ratio(frames[i], twin[i], damage, proj) for i in picks]
    if not ratios or ratios[-1] > HEALED_RATIO:
        last = ratios[-1] if ratios else None
        return HealVerdict(False, "the erased region did not grow back: it still differs from the texture around it", region=last, drift=drift)
    unhealed = [k for k, ratio in enumerate(ratios) if ratio > HEALED_RATIO]
    since = steps[picks[unhealed[-1] + 1 if unhealed else 0]] + grown_steps
    return HealVerdict(True, f"healed: the erased region grew back into the texture by step {since}", since, ratios[-1], drift)


def _learned(frame: np.ndarray, target: torch.Tensor) -> str | None:
    """None where the texture is learned (`verdict.judge`), else what it is ("not learned yet: this is noise"), or None unmeasurable."""
    try:
        word, sentence = judge(score(frame_to_tensor(frame), target))
    except ImageError:
        return None
    return None if word == LEARNED else sentence


def frame_to_tensor(frame: np.ndarray) -> torch.Tensor:
    """An H x W x 3 uint8 frame as (1, 3, H, W) in [0, 1], like `images.image_to_tensor`."""
    from PIL import Image

    return image_to_tensor(Image.fromarray(frame, "RGB"))


__all__ = [
    "Healing",
    "check_render",
    "duration",
    "frame_every",
    "grow_texture",
    "heal",
    "heal_curve",
    "heal_verdict",
    "lead_steps",
    "loss_table",
    "most_heal_steps",
    "most_steps",
    "on_zero_gpu",
    "readable",
    "train_chunk",
    "train_stream",
]
