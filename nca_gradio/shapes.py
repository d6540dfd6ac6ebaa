"""Whether a texture's grain is organised into whole objects of the target's size and outline.

`quality.score` compares colours, patches and the power spectrum. Those see grain but not wholeness: a speckle with
the target's colours and spectrum (stones cut to pebble-coloured crumbs) scores within a few hundredths of the target.
This measure looks at the regions that outlines enclose. The outlines are pixels whose gradient (Sobel, on the lightly
blurred luminance) is above the target's gradient quantiles `EDGE_LEVELS`; the regions are the 4-connected calm
pixels between them. A stone is the calm region inside its outline, whatever its tone. Per level, the area-weighted
1-D Wasserstein distances of log2 region area and of compactness (4 pi area / perimeter^2) are compared with the
target's. As in `quality.score`, they are divided by the same distance between the target's two halves (1.0 = as close
as the target to itself). The generated image is cut into halves too, so both sides see the same frame.

Checked by eye on 45 judged pairs (RESEARCH.md, "a measure that sees shapes"): 39 agree, the current combined score 43.
They are wrong on different pairs. This measure is rotation-blind, and it reads objects cut into smaller pieces as
smaller objects, so it is reported beside `combined`, not folded into it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage
from scipy.stats import wasserstein_distance

EDGE_LEVELS = (0.5, 0.6, 0.7)  # quantiles of the target's gradient magnitude: a region is a blob of calmer pixels
PRE_BLUR = 1.0  # Gaussian sigma in pixels before the gradient, so one-pixel grain inside a stone does not cut it up
OUTLINE_MIN = 0.05  # an outline is at least this fraction of the target's strongest gradients (its 0.99 quantile):
# in a flat sky with a few stars the gradient's median is zero, and every speck of noise would count as an outline
MIN_FLOOR = (0.5, 0.02)  # the least floor of the area and compactness distances (photos' floors: 1.0-5.9 and 0.04-0.34):
# a nearly uniform target's halves agree almost exactly, and any difference divided by that would explode
EMPTY_AREA = 13.0  # W1 of log2 area when one side has no region at all: about a 128 x 64 half's whole range
EMPTY_COMPACTNESS = 1.0
FLOOR_EPS = 1e-6


def luminance(img: np.ndarray) -> np.ndarray:
    """Luminance of an H x W x 3 image in [0, 1], blurred by PRE_BLUR on the torus the NCA grows on."""
    grey = img[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    return ndimage.gaussian_filter(grey, PRE_BLUR, mode="wrap")


def gradient(grey: np.ndarray) -> np.ndarray:
    """Gradient magnitude (Sobel) of a luminance image."""
    return np.hypot(ndimage.sobel(grey, 0, mode="nearest"), ndimage.sobel(grey, 1, mode="nearest"))


def blobs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Area and compactness (4 pi A / P^2; pi/4 for a pixel square) of each 4-connected blob of a mask.

    The perimeter counts pixel edges between the blob and anything else, the frame included, so a blob cut by the
    border is less compact; both sides of every comparison are cut by the same frame.
    """
    labels, count = ndimage.label(mask)
    if count == 0:
        return np.zeros(0), np.zeros(0)
    padded = np.pad(labels, 1)
    centre = padded[1:-1, 1:-1]
    perimeter = np.zeros(count + 1)
    for shifted in (padded[:-2, 1:-1], padded[2:, 1:-1], padded[1:-1, :-2], padded[1:-1, 2:]):
        edge = (centre > 0) & (shifted != centre)
        perimeter += np.bincount(centre[edge], minlength=count + 1)
    area = np.bincount(labels.ravel(), minlength=count + 1)[1:].astype(np.float64)
    return area, 4 * math.pi * area / np.maximum(perimeter[1:], 1.0) ** 2


@dataclass(frozen=True)
class BlobStats:
    """Per level: the blobs' log2 areas, compactness and areas (the weights), pooled over one or more images."""

    log_area: list[np.ndarray]
    compact: list[np.ndarray]
    weight: list[np.ndarray]


def blob_stats(masks_per_level: list[list[np.ndarray]]) -> BlobStats:
    """Blob statistics of each level's masks (one mask per image, pooled)."""
    log_area, compact, weight = [], [], []
    for masks in masks_per_level:
        areas, comps = zip(*(blobs(mask) for mask in masks))
        area = np.concatenate(areas)
        log_area.append(np.log2(np.maximum(area, 1.0)))
        compact.append(np.concatenate(comps))
        weight.append(area)
    return BlobStats(log_area, compact, weight)


def _w1(u: np.ndarray, v: np.ndarray, uw: np.ndarray, vw: np.ndarray, empty: float) -> float:
    if len(u) == 0 or len(v) == 0:
        return 0.0 if len(u) == len(v) else empty
    return float(wasserstein_distance(u, v, uw, vw))


def stats_distance(a: BlobStats, b: BlobStats) -> tuple[float, float]:
    """Summed over levels: the area-weighted W1 distance of log2 area, and of compactness."""
    levels = range(len(a.log_area))
    area = sum(_w1(a.log_area[i], b.log_area[i], a.weight[i], b.weight[i], EMPTY_AREA) for i in levels)
    comp = sum(_w1(a.compact[i], b.compact[i], a.weight[i], b.weight[i], EMPTY_COMPACTNESS) for i in levels)
    return area, comp


def halves(img):
    """Left and right halves of an array or tensor whose last axis is the width: the target's two halves give the
    floor of every ratio here and in `quality.score`."""
    width = img.shape[-1]
    return img[..., : width // 2], img[..., width // 2 :]


def edge_regions(grads: list[np.ndarray], thresholds: np.ndarray) -> BlobStats:
    """Blob statistics of the regions enclosed by edges: connected pixels whose gradient is below each threshold."""
    return blob_stats([[grad < threshold for grad in grads] for threshold in thresholds])


def shape_ratio_of_arrays(generated: np.ndarray, target: np.ndarray) -> float:
    """The shape ratio of two H x W x 3 images in [0, 1] (see the module docstring); lower is better."""
    target_grad = [gradient(h) for h in halves(luminance(target))]
    gen_grad = [gradient(h) for h in halves(luminance(generated))]
    everything = np.concatenate([g.ravel() for g in target_grad])
    thresholds = np.maximum(np.quantile(everything, EDGE_LEVELS), OUTLINE_MIN * np.quantile(everything, 0.99))
    left, right = (edge_regions([g], thresholds) for g in target_grad)
    gen = edge_regions(gen_grad, thresholds)
    floor, to_left, to_right = stats_distance(left, right), stats_distance(gen, left), stats_distance(gen, right)
    return sum((to_left[k] + to_right[k]) / 2 / max(floor[k], MIN_FLOOR[k], FLOOR_EPS) for k in range(2)) / 2


def shape_ratio(generated: torch.Tensor, target: torch.Tensor) -> float:
    """The shape ratio of a generated texture (1, 3, H, W) in [0, 1] against its target at the same pixel scale."""
    def array(img: torch.Tensor) -> np.ndarray:
        return img[0, :3].detach().float().cpu().clamp(0, 1).permute(1, 2, 0).numpy()

    return shape_ratio_of_arrays(array(generated), array(target))
