"""The pure functions behind the Gradio studio: a per-session workspace, resumable training, renders, plots.

`ui.py` only wires components to what is here (and to the rest of the library),
so every computation the studio shows can be tested without a browser, and
nothing here imports gradio. The functions that need a GPU take paths and
plain tensors and return CPU objects, so that on ZeroGPU, where `spaces.GPU`
runs them in another process, their arguments and results can travel.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import render
from .card import shared_files
from .images import image_to_tensor
from .losses import PatchLoss
from .model_folder import TRAINING_STATE, is_model_folder, load_folder
from .render import HEAL_GRIDS, MAX_FRAME_BYTES, Damage, RenderError, Rollout, frame_of, grow
from .train import TrainConfig, Trainer, pick_device

# The studio's inputs, as (lowest, highest): its sliders are built from these and its handlers check against them.
TRAIN_ITERATIONS = (1, 5000)
TRAIN_SIZES = (16, 128)
TIME_LIMITS = (0, 3600)  # seconds: longer runs belong to `nca train --time`
CANVAS_SIDES = (32, 1024)
RENDER_STEPS = (10, 4000)
HEALING_STEPS = (10, 2000)
FRAME_RATES = (5, 60)
SEEDS = (0, 2**31 - 1)
DAMAGE_SIZES = (0.02, 0.5)
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


# ------------------------------------------------------------------ the session's workspace


@dataclass
class Grown:
    """The last texture grown in a session: the Heal tab damages and heals this grid."""

    model: str
    folder: Path
    state: torch.Tensor  # the full cell grid (1, C, H, W) on the CPU
    frame: np.ndarray  # what it looks like, H x W x 3 uint8
    seed: int = 0


@dataclass
class Workspace:
    """One browser session's models and files. It lives in a `gr.State`, so sessions never see each other's models."""

    models: dict[str, Path] = field(default_factory=dict)
    grown: Grown | None = None
    latest: str | None = None  # the model trained or pulled last: the one the model lists select
    root: Path | None = None
    count: int = 0

    @property
    def folder(self) -> Path:
        """The session's own temporary folder, made on first use."""
        if self.root is None:
            self.root = Path(tempfile.mkdtemp(prefix="nca-studio-"))
        return self.root

    def path(self, name: str) -> Path:
        """A fresh path called `name` in the session's own folder.

        Each path gets a numbered folder of its own, so the file keeps its clean name: a download is called `name`.
        """
        self.count += 1
        folder = self.folder / f"{self.count:03d}"
        folder.mkdir()
        return folder / name

    def add_model(self, name: str, folder: Path) -> str:
        """Register a model under a label not used yet in this session; returns the label.

        A folder registered before (the same Hub repo pulled twice) keeps its label.
        """
        label = next((known for known, path in self.models.items() if path == Path(folder)), None)
        if label is None:
            label, n = name, 1
            while label in self.models:
                n += 1
                label = f"{name} #{n}"
            self.models[label] = Path(folder)
        self.latest = label
        return label

    @property
    def stop_file(self) -> Path:
        """A file, not a flag in memory, so that a training chunk in another process (ZeroGPU) sees it too."""
        return self.folder / "STOP"

    @property
    def hub_cache(self) -> Path:
        """This session's own Hub cache: a private model pulled with a token serves only the session that pulled it."""
        return self.folder / "hub-cache"

    def request_stop(self) -> None:
        self.stop_file.touch()

    def clear_stop(self) -> None:
        self.stop_file.unlink(missing_ok=True)

    def close(self) -> None:
        """Delete the session's files (called when Gradio drops the session's state)."""
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)


def bundled_models(folder: Path) -> dict[str, Path]:
    """The pretrained models shipped in `folder`: each subfolder that has a config and safetensors weights."""
    if not folder.is_dir():
        return {}
    found = sorted(p for p in folder.iterdir() if is_model_folder(p))
    return {f"{p.name} (bundled)": p for p in found}


def model_choices(workspace: Workspace, bundled: Path) -> dict[str, Path]:
    """Every model a session may use: bundled ones, then its own trained and pulled ones."""
    return {**bundled_models(bundled), **workspace.models}


def zip_model(folder: Path, destination: Path) -> Path:
    """The model as a Hub push would share it, zipped: config, weights, card, preview, target, training.json.

    So a model trained in the studio keeps its recipe and its card; the resume state
    (optimizer, pool) is left out. The files sit in one folder named like the zip,
    so unzipping never scatters them and the folder loads as it is (`nca grow FOLDER`).
    """
    from .atomic import replacing  # written beside `destination` and renamed over it: never half a zip

    inside = destination.stem
    with (
        tempfile.TemporaryDirectory(prefix="nca-zip-") as scratch,
        replacing(destination) as temp,
        zipfile.ZipFile(temp, "w", zipfile.ZIP_DEFLATED) as archive,
    ):
        for name, content in shared_files(folder, Path(scratch), log=lambda message: None, card_name=destination.stem).items():
            if isinstance(content, bytes):
                archive.writestr(f"{inside}/{name}", content)
            else:
                archive.write(content, f"{inside}/{name}")
    return destination


# ------------------------------------------------------------------ training


@dataclass
class TrainUpdate:
    """What the page shows while training; plain data, so it can cross from a ZeroGPU worker."""

    iteration: int
    total: int
    seconds: float
    loss_name: str
    device: str
    preview: object  # a PIL image of pool samples
    history: list[dict]
    finished: bool
    stopped: bool

    @property
    def last_texture_loss(self) -> float | None:
        """How far the look is from the target: the total minus the overflow penalty, which spikes early and means no divergence."""
        return texture_term(self.history[-1]) if self.history else None

    @property
    def last_overflow(self) -> float | None:
        return self.history[-1].get("overflow") if self.history else None

    @property
    def seconds_left(self) -> float | None:
        """A straight-line estimate from the pace so far; None before the first iteration or once done."""
        if self.iteration <= 0 or self.finished or self.stopped:
            return None
        return self.seconds / self.iteration * (self.total - self.iteration)


def _open_trainer(folder: Path, target: torch.Tensor, config: TrainConfig) -> Trainer:
    """Resume the run saved in `folder` (a later ZeroGPU chunk), or start it."""
    quiet = lambda message: None
    if (folder / TRAINING_STATE).exists():
        return Trainer.resume(folder, target, {"iters": config.iters, "device": config.device}, log=quiet)
    return Trainer(target, config, log=quiet)


def _update(trainer: Trainer, stopped: bool) -> TrainUpdate:
    return TrainUpdate(
        iteration=trainer.iteration,
        total=trainer.planned_iters,
        seconds=trainer.seconds,
        loss_name=trainer.loss_name,
        device=str(trainer.device),
        preview=trainer.preview(),
        history=list(trainer.history),
        finished=trainer.finished,
        stopped=stopped,
    )


def train_chunk(
    folder: Path,
    target: torch.Tensor,
    config: TrainConfig,
    stop_file: Path,
    seconds: float | None = None,
    update_seconds: float = UPDATE_SECONDS,
) -> Iterator[TrainUpdate]:
    """Train for up to `seconds` (None: to the end), reporting every `update_seconds`, and save to `folder`.

    The model is saved before the last update is yielded, so whoever reads
    that update finds the model on disk; if the reader goes away early the
    model so far is saved anyway.
    """
    trainer = _open_trainer(folder, target, config)
    started, saved = time.perf_counter(), False
    _trainings.started(stop_file)
    try:
        while True:
            left = None if seconds is None else seconds - (time.perf_counter() - started)
            slice_seconds = update_seconds if left is None else max(0.0, min(update_seconds, left))
            result = trainer.train(should_stop=stop_file.exists, max_seconds=slice_seconds)
            update = _update(trainer, result.stopped)
            last = update.finished or update.stopped or (left is not None and time.perf_counter() - started >= seconds)
            if last:
                trainer.save(folder, target)
                saved = True
                _trainings.ended(stop_file)
            yield update
            if last:
                return
    finally:
        if not saved:
            trainer.save(folder, target)
        _trainings.ended(stop_file)


class _Trainings:
    """The stop files of the trainings running in this process, so that SIGTERM can stop and save them all."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stop_files: set[Path] = set()

    def started(self, stop_file: Path) -> None:
        with self._lock:
            self._stop_files.add(stop_file)

    def ended(self, stop_file: Path) -> None:
        with self._lock:
            self._stop_files.discard(stop_file)

    def running(self) -> list[Path]:
        with self._lock:
            return list(self._stop_files)


_trainings = _Trainings()
SIGTERM_GRACE_SECONDS = 20.0  # a Space waits about 30 s after SIGTERM before it kills


def stop_trainings_on_sigterm(grace_seconds: float = SIGTERM_GRACE_SECONDS) -> None:
    """From now on, SIGTERM (a Space restarting, a scheduler) first stops every training in this process as the Stop
    button does, so each saves its model, waits up to `grace_seconds` for them, then ends the process as SIGTERM would.

    Call it from the main thread (Python runs signal handlers there), before `launch`. Trainings run in worker threads.
    """
    previous = signal.getsignal(signal.SIGTERM)

    def handle(signum: int, frame) -> None:
        for stop_file in _trainings.running():
            try:
                stop_file.touch()
            except OSError:  # the session's folder is gone: nothing left to save
                _trainings.ended(stop_file)
        deadline = time.monotonic() + grace_seconds
        while _trainings.running() and time.monotonic() < deadline:
            time.sleep(0.05)
        if callable(previous):
            previous(signum, frame)
            return
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
        os.kill(os.getpid(), signum)  # the default action ends the process; an ignored signal stays ignored

    signal.signal(signal.SIGTERM, handle)


_zero_gpu_chunk = gpu(duration=ZERO_GPU_CHUNK_SECONDS + 25)(train_chunk)


def train_stream(
    folder: Path, target: torch.Tensor, config: TrainConfig, stop_file: Path, chunk_seconds: float | None = None
) -> Iterator[TrainUpdate]:
    """Train to the end or until stopped. With `chunk_seconds` (ZeroGPU) it runs as resumable GPU calls."""
    run_chunk = _zero_gpu_chunk if chunk_seconds else train_chunk
    while True:
        update = None
        for update in run_chunk(folder, target, config, stop_file, chunk_seconds):
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


@gpu(duration=90)
def grow_texture(
    folder: Path, size: int, steps: int, every: int, seed: int = 0, on_frame: Callable[[int, torch.Tensor], None] | None = None
) -> Rollout:
    """Grow the model in `folder` from an empty size x size grid, on the best device."""
    return on_cpu(grow(load_folder(folder, render_device()), size, steps, every, seed, on_frame=on_frame))


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
) -> Healing:
    """Let a grown grid live for a few frames, erase the damaged region, and run `steps` steps of healing beside an undamaged twin."""
    device = render_device()
    twin = [frame_of(state)]

    def keep_twin(step: int, x: torch.Tensor) -> None:
        twin.append(frame_of(x[1:]))
        if on_frame is not None:
            on_frame(step, x[:1])

    rollout = render.heal(load_folder(folder, device), damage, grow_steps=lead_steps(every, steps), heal_steps=steps, every=every,
                          seed=seed, state=state.to(device), on_frame=keep_twin, twin=True)
    return Healing(replace(rollout, state=rollout.state[:1].cpu()), twin)


def lead_steps(every: int, steps: int) -> int:
    """How long the intact texture is shown before the damage: four frames (the damage lands at step lead + 1)."""
    return min(4 * every, steps)


# ------------------------------------------------------------------ damage


def random_damage(shape: str, size: float, rng: random.Random | None = None) -> Damage:
    """Damage of the given shape and size somewhere away from the very edge."""
    rng = rng or random.Random()
    return Damage(shape, round(rng.uniform(0.15, 0.85), 3), round(rng.uniform(0.15, 0.85), 3), size)


def damage_at_pixel(shape: str, size: float, x: float, y: float, width: int, height: int) -> Damage:
    """Damage centred on a clicked pixel, as fractions of the canvas."""
    fx = min(max((x + 0.5) / width, 0.0), 1.0)
    fy = min(max((y + 0.5) / height, 0.0), 1.0)
    return Damage(shape, round(fx, 3), round(fy, 3), size)


def damage_overlay(frame: np.ndarray, damage: Damage, colour: tuple[int, int, int] = (255, 40, 90)) -> np.ndarray:
    """The texture with the region about to be erased tinted, so the user sees what a click will do."""
    mask = damage.mask(frame.shape[0], frame.shape[1])[0, 0].numpy().astype(bool)
    out = frame.astype(np.float32)
    out[mask] = 0.4 * out[mask] + 0.6 * np.asarray(colour, dtype=np.float32)
    return out.round().clip(0, 255).astype(np.uint8)


DISPLAY_SIDE = 384


def display_scale(frame: np.ndarray, side: int = DISPLAY_SIDE) -> int:
    """The whole-number zoom that shows a small canvas at about `side` pixels (1 for large ones)."""
    return max(1, side // max(frame.shape[:2]))


def for_display(frame: np.ndarray, side: int = DISPLAY_SIDE) -> np.ndarray:
    """A small canvas zoomed by whole pixels (the browser's click coordinates then map back exactly)."""
    scale = display_scale(frame, side)
    return frame.repeat(scale, axis=0).repeat(scale, axis=1) if scale > 1 else frame


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


def healed_at(curve, damaged_at: int) -> int | None:
    """The step from which on the damaged grid stays at its undamaged twin's level, else None (not healed by the end)."""
    damaged = curve[curve["grid"] == DAMAGED].set_index("step")["texture loss"]
    twin = curve[curve["grid"] == UNDAMAGED].set_index("step")["texture loss"].reindex(damaged.index)

    def smooth(series):
        return series.rolling(3, center=True, min_periods=1).mean()

    after = damaged.index >= damaged_at
    level = (smooth(damaged) <= smooth(twin) * HEALED_MARGIN + HEALED_SPREAD * twin.max())[after]
    if len(level) == 0 or not level.iloc[-1]:
        return None
    broken = np.flatnonzero(~level.to_numpy())  # the last frame still above the twin's level
    return int(level.index[broken[-1] + 1] if len(broken) else level.index[0])


def frame_to_tensor(frame: np.ndarray) -> torch.Tensor:
    """An H x W x 3 uint8 frame as (1, 3, H, W) in [0, 1], like `images.image_to_tensor`."""
    from PIL import Image

    return image_to_tensor(Image.fromarray(frame, "RGB"))


# ------------------------------------------------------------------ model cards


def card_markdown(text: str) -> str:
    """A model card for display: without its YAML front matter or images that point into the repo."""
    body = re.sub(r"\A---\n.*?\n---\n", "", text, count=1, flags=re.DOTALL)
    body = re.sub(r"!\[[^\]]*\]\((?!https?://)[^)]*\)\n?", "", body)
    return re.sub(r"\n{3,}", "\n\n", body).strip()


__all__ = [
    "Grown",
    "Healing",
    "TrainUpdate",
    "Workspace",
    "bundled_models",
    "card_markdown",
    "check_render",
    "damage_at_pixel",
    "damage_overlay",
    "display_scale",
    "duration",
    "for_display",
    "frame_every",
    "grow_texture",
    "heal",
    "heal_curve",
    "healed_at",
    "lead_steps",
    "loss_table",
    "model_choices",
    "most_heal_steps",
    "most_steps",
    "on_zero_gpu",
    "random_damage",
    "readable",
    "stop_trainings_on_sigterm",
    "train_stream",
    "zip_model",
]
