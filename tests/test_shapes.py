"""The shape measure: regions enclosed by outlines, compared with the target's own two halves."""

from __future__ import annotations

import math

import numpy as np
import torch

from nca_gradio.quality import score
from nca_gradio.shapes import blobs, shape_ratio


def discs(radius: float, seed: int, size: int = 128, count: int | None = None) -> torch.Tensor:
    """Dark-rimmed light discs of one radius on a mid-grey ground, scattered on a torus: a texture of whole objects."""
    rng = np.random.default_rng(seed)
    count = count or int(0.35 * size * size / (math.pi * radius * radius))
    yy, xx = np.mgrid[0:size, 0:size]
    img = np.full((size, size), 0.45)
    for cy, cx in rng.uniform(0, size, (count, 2)):
        dy = np.minimum(abs(yy - cy), size - abs(yy - cy))
        dx = np.minimum(abs(xx - cx), size - abs(xx - cx))
        d = np.hypot(dy, dx)
        img[d < radius + 1.5] = 0.1
        img[d < radius] = 0.85
    return torch.from_numpy(img).float().expand(1, 3, size, size).clone()


def speckle_like(img: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """The same pixels in a new order: every colour and the histogram kept, every object gone."""
    flat = img.flatten(2)
    order = torch.randperm(flat.shape[-1], generator=torch.Generator().manual_seed(seed))
    return flat[..., order].view_as(img)


def test_blob_areas_and_compactness_of_known_shapes():
    mask = np.zeros((20, 20), bool)
    mask[2:6, 2:6] = True  # a 4 x 4 square: area 16, perimeter 16
    mask[10:11, 3:15] = True  # a 1 x 12 bar: area 12, perimeter 26
    area, compact = blobs(mask)
    assert sorted(area.tolist()) == [12.0, 16.0]
    by_area = dict(zip(area.tolist(), compact.tolist()))
    assert math.isclose(by_area[16.0], 4 * math.pi * 16 / 16**2)
    assert math.isclose(by_area[12.0], 4 * math.pi * 12 / 26**2)


def test_new_objects_of_the_same_kind_score_near_the_floor_and_broken_or_resized_ones_far_from_it():
    target = discs(6, seed=0)
    same_kind = shape_ratio(discs(6, seed=1), target)
    bigger = shape_ratio(discs(12, seed=1), target)
    smaller = shape_ratio(discs(3, seed=1), target)
    speckle = shape_ratio(speckle_like(target), target)
    assert same_kind < 2.0
    for other in (bigger, smaller, speckle):
        assert other > 2 * same_kind


def test_score_reports_the_shape_ratio_beside_combined():
    target, grown = discs(6, seed=0), discs(6, seed=1)
    whole, speckle = score(grown, target), score(speckle_like(target), target)
    assert whole.shape == shape_ratio(grown, target) and whole.as_dict()["shape"] == round(whole.shape, 4)
    assert speckle.shape > 3 * whole.shape
    assert speckle.colour < 1.5  # the same pixels: the colour term cannot tell them apart, the shape ratio can


def test_flat_images_give_finite_ratios():
    flat = torch.full((1, 3, 64, 64), 0.5)
    target = discs(5, seed=0, size=64)
    assert math.isfinite(shape_ratio(flat, target))
    assert math.isfinite(shape_ratio(target, flat))


def test_a_sparse_texture_on_a_flat_ground_is_measured_by_its_objects_not_by_noise():
    """A night sky: a few specks on flat navy. Its gradient's median is zero, so noise must not count as outlines."""
    target = discs(1.5, seed=0, count=40)
    another_sky = discs(1.5, seed=1, count=40) + 0.002 * torch.rand(1, 3, 128, 128, generator=torch.Generator().manual_seed(0))
    assert shape_ratio(another_sky, target) < 2.0
    assert shape_ratio(discs(6, seed=1), target) > 2 * shape_ratio(another_sky, target)
