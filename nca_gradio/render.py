"""Growing, damaging and healing textures, and writing the frames as GIF, MP4 or PNG."""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from .atomic import SaveError, replacing
from .errors import UserError
from .fast import Grower, apply_steps, step_weights
from .model import NCA, draw_masks, to_rgb
from .precision import inference_dtype


class Rules(Protocol):
    """What steps a grid besides one `NCA`: `graft.Graft` (two rules on one grid) advances itself, in float32."""

    channels: int

    def eval(self) -> Rules: ...

    def empty_grid(self, batch: int, height: int, width: int | None = None) -> torch.Tensor: ...

    def stepper(self, generator: torch.Generator) -> Callable[[torch.Tensor, int], torch.Tensor]: ...

DAMAGE_SHAPES = ("circle", "square", "stripe")
ANIMATION_FORMATS = (".gif", ".mp4")
MAX_SIZE = 2048
MAX_STEPS = 100_000
MAX_SEED = 2**63 - 1  # what a torch generator takes
GROW_SIZE, GROW_STEPS, HEAL_STEPS, FRAME_EVERY = 256, 512, 256, 4  # what grow, heal and `nca grow`/`nca heal` do by default
HEAL_GRIDS = 2  # `heal(twin=True)` grows the damaged grid and its undamaged twin side by side: twice the work
MAX_FRAME_BYTES = 300_000_000  # all kept frames together, before a video is written (the studio's cap as well)
PROBE_SIZE, PROBE_STEPS = 32, 200  # `grows_finite`: about 0.1 s on one CPU core


class RenderError(UserError, ValueError):
    """A render request out of range, with a message that says what to change."""


@dataclass(frozen=True)
class Damage:
    """A region to erase: centre (x, y) and size as fractions of the canvas (size is a radius or half-side)."""

    shape: str = "circle"
    x: float = 0.5
    y: float = 0.5
    size: float = 0.25

    def __post_init__(self) -> None:
        if self.shape not in DAMAGE_SHAPES:
            raise RenderError(f"damage shape must be one of {', '.join(DAMAGE_SHAPES)}, got {self.shape!r}")
        for name in ("x", "y"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise RenderError(f"damage {name} must be between 0 and 1 (a fraction of the canvas)")
        if not 0.0 < self.size <= 1.0:
            raise RenderError("damage size must be between 0 and 1 (a fraction of the canvas)")

    def mask(self, height: int, width: int, device: torch.device | str = "cpu") -> torch.Tensor:
        """(1, 1, H, W): 1 where cells are erased. Wraps around the edges, like the torus it lives on."""
        ys = torch.arange(height, device=device, dtype=torch.float32)[:, None] + 0.5
        xs = torch.arange(width, device=device, dtype=torch.float32)[None, :] + 0.5
        dy = _wrapped(ys - self.y * height, height)
        dx = _wrapped(xs - self.x * width, width)
        side = min(height, width)
        radius = self.size * side
        if self.shape == "circle":
            hit = dx.square() + dy.square() <= radius**2
        elif self.shape == "square":
            hit = (dx.abs() <= radius) & (dy.abs() <= radius)
        else:  # a horizontal band across the whole canvas
            hit = (dy.abs() <= radius / 2).expand(height, width)
        return hit.float()[None, None]


def _wrapped(d: torch.Tensor, period: int) -> torch.Tensor:
    return (d + period / 2) % period - period / 2


def apply_damage(x: torch.Tensor, damage: Damage) -> torch.Tensor:
    """Erase the region: those cells go back to the empty state."""
    mask = damage.mask(x.shape[-2], x.shape[-1], x.device).to(x.dtype)
    return x * (1.0 - mask)


def check_request(size: int, steps: int, every: int, seed: int = 0) -> None:
    if not isinstance(size, int) or not 16 <= size <= MAX_SIZE:
        raise RenderError(f"size must be an integer from 16 to {MAX_SIZE}, got {size!r}")
    if not isinstance(steps, int) or not 1 <= steps <= MAX_STEPS:
        raise RenderError(f"steps must be an integer from 1 to {MAX_STEPS}, got {steps!r}")
    if not isinstance(every, int) or every < 1:
        raise RenderError(f"every must be a positive integer, got {every!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise RenderError(f"seed must be an integer from 0 to {MAX_SEED}, got {seed!r}")


def frames_kept(steps: int, every: int) -> int:
    """How many frames `run` keeps: the start, every `every`-th step, and the last."""
    return 1 + steps // every + (1 if steps % every else 0)


def check_frame_memory(height: int, width: int, steps: int, every: int, max_bytes: int = MAX_FRAME_BYTES) -> None:
    """Refuse, before any work, a rollout whose kept frames would not fit in `max_bytes` of memory."""
    frame = 3 * height * width
    needed = frames_kept(steps, every) * frame
    if needed > max_bytes:
        fits = max(1, max_bytes // frame - 2)  # frames that fit, less the start and a last odd one
        least = -(-steps // fits)
        raise RenderError(
            f"{frames_kept(steps, every):,} frames of {width}x{height} need {needed / 1e6:,.0f} MB of memory, more than the "
            f"{max_bytes / 1e6:,.0f} MB cap: keep one frame every {least} steps or more, or use fewer steps or a smaller canvas"
        )


def frame_of(x: torch.Tensor) -> np.ndarray:
    """The first grid of a batch as an H x W x 3 uint8 array."""
    rgb = to_rgb(x[:1].float())[0]
    return (rgb.permute(1, 2, 0).cpu().numpy() * 255.0).round().astype(np.uint8)


@dataclass
class Rollout:
    """Frames kept along the way, the steps they were taken at, the final grid, and how the steps ran."""

    frames: list[np.ndarray]
    steps: list[int]
    state: torch.Tensor
    path: str = "eager"

    @property
    def final(self) -> np.ndarray:
        return frame_of(self.state)


STEP_CHUNK = 16  # steps per recorded CUDA graph (the GPU is busy by then; longer ones add capture time), or per draw of masks


@torch.inference_mode()
def run(
    model: NCA | Rules,
    state: torch.Tensor,
    steps: int,
    every: int = 4,
    seed: int = 0,
    events: dict[int, Callable[[torch.Tensor], torch.Tensor]] | None = None,
    on_frame: Callable[[int, torch.Tensor], None] | None = None,
    precision: str = "auto",
    keep_frames: bool = True,
) -> Rollout:
    """Apply the model `steps` times from `state`, keeping every `every`-th frame (none but the start without `keep_frames`).

    `events` maps a step number to a function applied to the grid before that
    step (damage). The rollout is reproducible for a given seed, precision and
    device (on another CPU model, rounding can differ in the last bits). "auto"
    computes in bfloat16 where the CPU has native bfloat16 units
    (`precision.inference_dtype`) and, on a GPU, replays CUDA graphs of the steps
    between frames (`fast.Grower`: same distribution of cell updates, other random
    draws); "float32" is `fast.step` step after step, equal to `model(x, generator)` up to rounding.
    `on_frame(step, grid)` is called at every kept frame, for progress bars and side measurements.
    """
    check_request(state.shape[-1], steps, every, seed)
    if keep_frames:
        check_frame_memory(state.shape[-2], state.shape[-1], steps, every)
    model = model.eval()
    generator = torch.Generator(state.device).manual_seed(seed)
    advance, path = _stepper(model, state.device, every, generator, precision)
    x = state
    frames, kept = [frame_of(x)], [0]
    done = 0
    while done < steps:
        if events and done + 1 in events:
            x = events[done + 1](x)
        end = _next_stop(done, steps, every, events)
        x = advance(x, end - done)
        done = end
        if done % every == 0 or done == steps:
            if keep_frames:
                frames.append(frame_of(x))
                kept.append(done)
            if on_frame is not None:
                on_frame(done, x)
    return Rollout(frames, kept, x, path())


def _next_stop(done: int, steps: int, every: int, events: dict | None) -> int:
    """The step to advance to from `done`: the next kept frame, or the step before the next event."""
    stop = min(steps, (done // every + 1) * every)
    for due in events or ():
        if done + 1 < due <= stop:
            stop = due - 1
    return stop


def _stepper(
    model: NCA | Rules, device: torch.device, every: int, generator: torch.Generator, precision: str
) -> tuple[Callable[[torch.Tensor, int], torch.Tensor], Callable[[], str]]:
    """How `run` advances n steps, and a way to ask afterwards how they ran.

    On a GPU with precision "auto", a `Grower` replays recorded CUDA graphs
    (about ten kernel launches a step become one launch per chunk, which is what
    limits a GPU at these sizes); the chunk divides `every`, so frames fall on
    replays. Otherwise `fast.apply_steps`, a few steps' masks at a time: the plain path.
    """
    if not isinstance(model, NCA):  # `Rules` such as a graft: they step themselves
        return model.stepper(generator), (lambda: "eager, graft")
    dtype = inference_dtype(model, device, precision)
    if torch.device(device).type == "cuda" and precision == "auto" and dtype is None:
        chunk = max(d for d in range(1, min(every, STEP_CHUNK) + 1) if every % d == 0)
        grower = Grower(model, chunk=chunk)
        return (lambda x, n: grower.run(x, n, generator)), (lambda: grower.path)
    weights = step_weights(model, dtype)

    def plain(x: torch.Tensor, n: int) -> torch.Tensor:
        for start in range(0, n, STEP_CHUNK):  # masks drawn a few steps at a time: the same numbers, little memory
            x = apply_steps(model, x, draw_masks(x, min(STEP_CHUNK, n - start), model.fire_rate, generator), weights)
        return x

    return plain, (lambda: "eager" if dtype is None else "eager, bfloat16")


def grow(model: NCA | Rules, size: int = GROW_SIZE, steps: int = GROW_STEPS, every: int = FRAME_EVERY, seed: int = 0,
         height: int | None = None, precision: str = "auto", keep_frames: bool = True,
         on_frame: Callable[[int, torch.Tensor], None] | None = None) -> Rollout:
    """Grow a texture from an empty grid of size x size, on the model's device (any size: it tiles on a torus)."""
    check_request(size, steps, every, seed)
    return run(model, model.empty_grid(1, height or size, size), steps, every, seed, on_frame=on_frame, precision=precision,
               keep_frames=keep_frames)


def grows_finite(model: NCA, size: int = PROBE_SIZE, steps: int = PROBE_STEPS) -> bool:
    """Whether the model's cells stay finite as it grows: finite weights can still blow up to NaN or inf within steps.

    Runs on a copy of the model (its training mode is left alone; building a new one would draw from the global
    random generator, which a resumed training replays), in float32.
    """
    twin = copy.deepcopy(model)
    state = grow(twin, size=size, steps=steps, every=steps, precision="float32", keep_frames=False).state
    return bool(torch.isfinite(state).all())


def heal(
    model: NCA | Rules,
    damage: Damage,
    size: int = GROW_SIZE,
    grow_steps: int = GROW_STEPS,
    heal_steps: int = HEAL_STEPS,
    every: int = FRAME_EVERY,
    seed: int = 0,
    state: torch.Tensor | None = None,
    precision: str = "auto",
    on_frame: Callable[[int, torch.Tensor], None] | None = None,
    twin: bool = False,
) -> Rollout:
    """Grow (or start from `state`), erase the damaged region, and let it heal.

    The damage is applied just before step `grow_steps + 1`; frames cover both phases. With `twin`, an
    undamaged copy of the grid lives beside it (a batch of two; `on_frame` sees both, the frames show the
    damaged one): a living texture keeps changing, so it has healed when it is as far from the start as its twin.
    """
    start = state if state is not None else model.empty_grid(1, size)
    if twin:
        start = start.repeat(HEAL_GRIDS, 1, 1, 1)

    def damage_first(x: torch.Tensor) -> torch.Tensor:
        return torch.cat([apply_damage(x[:1], damage), x[1:]])

    return run(model, start, grow_steps + heal_steps, every, seed, events={grow_steps + 1: damage_first}, on_frame=on_frame,
               precision=precision)


def save_animation(frames: Sequence[np.ndarray], path: str | Path, fps: int = 20) -> Path:
    """Write frames as an animated GIF or an MP4 (H.264), chosen by the file's suffix, atomically.

    The file is checked to be complete before it replaces an older one; a failure raises `atomic.SaveError`.
    """
    from PIL import Image

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in ANIMATION_FORMATS:
        raise RenderError(f"{path.name}: an animation must end in .gif or .mp4")
    if not 1 <= fps <= 60:
        raise RenderError(f"fps must be from 1 to 60, got {fps}")
    if len({frame.shape for frame in frames}) != 1:  # before the encoder starts: it cannot be stopped cleanly mid-way
        raise RenderError(f"an animation needs frames of one size, got {sorted({frame.shape for frame in frames})}")
    _make_parent(path)
    with replacing(path, check=_check_complete) as temp:
        if suffix == ".gif":  # PIL, as imageio would call it, but without imageio retrying a failed write at exit
            images = [Image.fromarray(np.ascontiguousarray(frame), "RGB") for frame in frames]
            images[0].save(temp, format="GIF", save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)
        else:
            even = [f[: f.shape[0] // 2 * 2, : f.shape[1] // 2 * 2] for f in frames]  # yuv420p needs even sides
            _write_mp4(even, temp, fps)
    return path


def _write_mp4(frames: Sequence[np.ndarray], path: Path, fps: int) -> None:
    import imageio.v2 as imageio

    with imageio.get_writer(path, format="FFMPEG", fps=fps, codec="libx264", macro_block_size=1, pixelformat="yuv420p", quality=8) as writer:
        for frame in frames:
            writer.append_data(frame)


def save_png(frame: np.ndarray, path: str | Path) -> Path:
    """The final texture as a PNG, atomically. The NCA lives on a torus, so it tiles seamlessly."""
    from PIL import Image

    path = Path(path)
    _make_parent(path)
    with replacing(path, check=_check_complete) as temp:
        Image.fromarray(frame, "RGB").save(temp, format="PNG")
    return path


def _make_parent(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SaveError(f"cannot write {path}: its folder {path.parent} cannot be made ({exc.strerror or exc})") from None


# How each format's file ends (or, for MP4, what its encoder writes last): a file without it was cut short.
_COMPLETE = {".gif": lambda data: data.endswith(b"\x3b"), ".png": lambda data: data.endswith(b"IEND\xaeB`\x82"),
             ".mp4": lambda data: b"moov" in data}


def _check_complete(path: Path) -> str | None:
    data = path.read_bytes()
    if not data or not _COMPLETE[path.suffix.lower()](data):
        return f"the encoder left {len(data)} bytes of {path.suffix} data, empty or cut short"
    return None
