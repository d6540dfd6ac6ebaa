"""Where the Heal tab damages a texture, and how the page shows it: a random or clicked spot, the region tinted, small canvases zoomed.

The damage itself (erasing cells, healing) is `render`'s; this module only places it and draws it for the page.
"""

from __future__ import annotations

import random

import numpy as np

from .render import Damage


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
