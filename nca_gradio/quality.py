"""How close a texture is to its target, relative to the target's own variation.

Each distance (patches at several scales, colours, the power spectrum by
frequency and orientation) is divided by the same distance between the two
halves of the target, so 1.0 means "as close as the texture is to itself".
Directions are drawn from a fixed seed, so a score is repeatable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .images import ImageError
from .losses import covariance_root, random_directions, shaped_directions, tiled_log_spectrum
from .model import to_rgb
from .render import HEAL_STEPS, Damage, apply_damage, run
from .shapes import halves, shape_ratio

PATCH_SIZE = 7
MIN_TARGET_SIDE = 8 * PATCH_SIZE  # a target smaller than this cannot be scored: its halves hold too few patches
PATCH_SCALES = (1, 2, 4)
PROJECTIONS = 128
FLOOR_EPS = 1e-6
SPECTRUM_BINS = 12
SPECTRUM_ANGLES = 6  # orientation sectors: streaks in a texture of round grains show up here
SPECTRUM_TILE = 64  # spectra are averaged over tiles of one size, so both images have the same cells


@dataclass(frozen=True)
class Score:
    """Ratios against the target's own floor: 1.0 is indistinguishable, lower is better."""

    combined: float
    patches: float
    colour: float
    spectrum: float
    per_scale: tuple[float, ...]
    shape: float  # the regions outlines enclose (`shapes.shape_ratio`): reported beside combined, not part of it

    def as_dict(self) -> dict:
        return {
            "combined": round(self.combined, 4),
            "patches": round(self.patches, 4),
            "colour": round(self.colour, 4),
            "spectrum": round(self.spectrum, 4),
            "per_scale": {f"1/{s}": round(v, 4) for s, v in zip(PATCH_SCALES, self.per_scale)},
            "shape": round(self.shape, 4),
        }


def _directions(dim: int, count: int, seed: int) -> torch.Tensor:
    return random_directions(dim, count, torch.device("cpu"), torch.Generator().manual_seed(seed))


def _quantiles(samples: torch.Tensor, proj: torch.Tensor, points: int = 256) -> torch.Tensor:
    """(P, points) quantiles of the samples (N, D) projected on each direction."""
    projected = (samples @ proj).T.sort(dim=-1).values
    index = torch.linspace(0, projected.shape[-1] - 1, points).round().long()
    return projected[:, index]


def sliced_distance(a: torch.Tensor, b: torch.Tensor, proj: torch.Tensor) -> float:
    """The sliced Wasserstein distance between two sets of samples (N, D) along the directions `proj` (D, P)."""
    return float((_quantiles(a, proj) - _quantiles(b, proj)).square().mean().sqrt())


def _patches(img: torch.Tensor, scale: int) -> torch.Tensor:
    if scale > 1:
        img = F.avg_pool2d(img, scale)
    return F.unfold(img, PATCH_SIZE).squeeze(0).T


def patch_directions(target: torch.Tensor) -> list[torch.Tensor]:
    """Fixed directions per scale: half uniform, half from the target's patch covariance.

    Uniform directions alone are nearly blind to spatial structure (see
    losses.PatchLoss), so a score built only on them would pass coloured noise.
    """
    return [
        shaped_directions(covariance_root(_patches(target, scale)), PROJECTIONS, torch.device("cpu"), torch.Generator().manual_seed(i))
        for i, scale in enumerate(PATCH_SCALES)
    ]


def distances(a: torch.Tensor, b: torch.Tensor, directions: list[torch.Tensor]) -> dict[str, float]:
    """Raw distances between two images (1, 3, H, W) in [0, 1]."""
    out: dict[str, float] = {}
    for scale, proj in zip(PATCH_SCALES, directions):
        out[f"patch{scale}"] = sliced_distance(_patches(a, scale), _patches(b, scale), proj)
    colours_a, colours_b = a.flatten(2)[0].T, b.flatten(2)[0].T
    proj = torch.cat([torch.eye(3), _directions(3, 29, seed=99)], dim=1)
    out["colour"] = sliced_distance(colours_a, colours_b, proj)
    tile = min(SPECTRUM_TILE, *a.shape[-2:], *b.shape[-2:])
    spectra = [tiled_log_spectrum(img, (tile, tile), SPECTRUM_BINS, SPECTRUM_ANGLES) for img in (a, b)]
    out["spectrum"] = float((spectra[0] - spectra[1]).abs().mean())
    return out


def score(generated: torch.Tensor, target: torch.Tensor) -> Score:
    """Score a generated texture (1, 3, H, W) against its target at the same pixel scale.

    The floor is the distance between the target's two halves; the generated
    texture is measured against each half and the two are averaged.
    """
    generated, target = generated.float().cpu(), target.float().cpu()
    if min(generated.shape[-2:]) < 4 * PATCH_SIZE or min(target.shape[-2:]) < MIN_TARGET_SIDE:
        raise ImageError(f"images too small to score: the generated one needs {4 * PATCH_SIZE} and the target {MIN_TARGET_SIDE} pixels a side")
    left, right = halves(target)
    directions = patch_directions(target)
    floor = distances(left, right, directions)
    to_left, to_right = distances(generated, left, directions), distances(generated, right, directions)
    ratio = {k: (to_left[k] + to_right[k]) / 2 / max(floor[k], FLOOR_EPS) for k in floor}
    per_scale = tuple(ratio[f"patch{s}"] for s in PATCH_SCALES)
    patches = sum(per_scale) / len(per_scale)
    combined = (patches + ratio["colour"] + ratio["spectrum"]) / 3
    return Score(combined, patches, ratio["colour"], ratio["spectrum"], per_scale, shape_ratio(generated, target))




@dataclass(frozen=True)
class ModelFigures:
    """Quality of a model's texture along a long rollout, and how well it heals."""

    at_1024: Score
    at_4096: Score
    healed: Score  # HEAL_STEPS after the default damage (a circle of radius 1/4) in the middle: the worst of HEAL_TRIALS

    @property
    def heal_ratio(self) -> float:
        """Healed score over the undamaged one: 1.0 means fully healed."""
        return self.healed.combined / max(self.at_1024.combined, FLOOR_EPS)

    def as_dict(self) -> dict:
        return {
            "combined_1024": round(self.at_1024.combined, 4),
            "combined_4096": round(self.at_4096.combined, 4),
            "combined_healed": round(self.healed.combined, 4),
            "heal_ratio": round(self.heal_ratio, 4),
            "shape_1024": round(self.at_1024.shape, 4),
        }


HEAL_TRIALS = 3  # damage events per model, the worst one counts: one lucky heal can hide a model that blows up
BUNDLED_STABLE = 2.0  # a bundled model's combined score at 1,024 and at 4,096 steps, at most
BUNDLED_HEALS = 1.25  # and its heal ratio, at most


def bundled_shortfalls(figures: dict) -> list[str]:
    """What keeps a model's figures (`ModelFigures.as_dict`) from the bundled zoo's bars, one phrase each; [] passes.

    A figure that is not a number (a rollout that grew NaN) fails its bar: `x <= bar` is false for NaN.
    """
    bars = {"combined_1024": BUNDLED_STABLE, "combined_4096": BUNDLED_STABLE, "heal_ratio": BUNDLED_HEALS}
    return [f"{name} is {figures[name]:.2f} (at most {bar})" for name, bar in bars.items() if not figures[name] <= bar]


def model_figures(model, target: torch.Tensor, size: int = 128, seed: int = 0, precision: str = "float32",
                  grown: torch.Tensor | None = None) -> ModelFigures:
    """Grow `size` x `size` for 4096 steps (scored at 1024 and 4096), and heal copies damaged at step 1024.

    `grown` is the state after the first 1,024 steps when the caller already has it (the card's verdict grows
    the same rollout: `verdict.grow_for_verdict`), so it is not grown twice.

    The healed figure is the worst of `HEAL_TRIALS` heals of the same damage with
    other random firing. In float32 by default, so that the figures do not depend
    on a device's bfloat16 units; they still move a little from one CPU to another
    (up to about 0.2), because thousands of steps amplify the last bits of rounding.
    """
    def image(state: torch.Tensor) -> torch.Tensor:
        return to_rgb(state.float()).cpu()

    if grown is None:
        grown = run(model, model.empty_grid(1, size), 1024, every=1024, seed=seed, precision=precision).state
    old = run(model, grown, 3072, every=3072, seed=seed + 1, precision=precision).state
    damaged = apply_damage(grown, Damage())
    heals = (run(model, damaged, HEAL_STEPS, every=HEAL_STEPS, seed=seed + 2 + trial, precision=precision).state
             for trial in range(HEAL_TRIALS))
    healed = max((score(image(state), target) for state in heals), key=lambda s: s.combined)
    return ModelFigures(score(image(grown), target), score(image(old), target), healed)


@dataclass(frozen=True)
class Orientation:
    """A texture's dominant stripe direction and how strongly it dominates.

    `angle` is in degrees in [0, 180), counter-clockwise on screen, 0 for stripes
    that run left to right and 90 for upright ones; `coherence` is 0 for a texture
    with no preferred direction and 1 for perfect parallel stripes.
    """

    angle: float
    coherence: float


def orientation(img: torch.Tensor, blur: int = 2) -> Orientation:
    """The structure tensor of an image (1, 3, H, W), summed over the whole image.

    The luminance is box-blurred by `blur` pixels first, so one-pixel grain adds
    little; the gradients come from Scharr filters over the valid region only
    (no padding), so a target that does not tile has no seam.
    """
    grey = img.float().cpu().mean(dim=1, keepdim=True)
    if blur > 1:
        grey = F.avg_pool2d(grey, blur, stride=1)
    scharr = torch.tensor([[3.0, 0.0, -3.0], [10.0, 0.0, -10.0], [3.0, 0.0, -3.0]])  # less angular bias than Sobel
    gx = F.conv2d(grey, scharr.view(1, 1, 3, 3))
    gy = F.conv2d(grey, scharr.T.reshape(1, 1, 3, 3))
    jxx, jyy, jxy = float(gx.square().mean()), float(gy.square().mean()), float((gx * gy).mean())
    energy = jxx + jyy
    if energy <= FLOOR_EPS * FLOOR_EPS:
        return Orientation(0.0, 0.0)
    # The gradient's direction in image coordinates (y down); stripes run across it.
    gradient = 0.5 * math.degrees(math.atan2(2 * jxy, jxx - jyy))
    angle = (-gradient + 90.0) % 180.0  # y up, then turned a quarter: along the stripes
    coherence = math.sqrt((jxx - jyy) ** 2 + 4 * jxy**2) / energy
    return Orientation(angle, coherence)


def angle_difference(a: float, b: float) -> float:
    """Degrees between two stripe directions, which repeat every 180 degrees: 0 to 90."""
    d = abs(a - b) % 180.0
    return min(d, 180.0 - d)
