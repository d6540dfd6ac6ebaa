"""The quality score: 1.0 is the target's own floor; noise and flat images are far above it."""

from pathlib import Path

import pytest
import torch

from nca_gradio.images import ImageError, load_target
from nca_gradio.model import NCA, NCAConfig
from nca_gradio.model_folder import load_folder
from nca_gradio.quality import angle_difference, model_figures, orientation, score


@pytest.mark.slow
def test_the_target_scores_near_its_floor_and_noise_far_above(pebbles_64, pebbles_path):
    target = load_target(pebbles_path, 128)
    itself = score(target, target)
    noise = score(torch.rand(1, 3, 128, 128, generator=torch.Generator().manual_seed(0)), target)
    flat = score(torch.full((1, 3, 128, 128), 0.5), target)
    assert itself.combined < 1.0
    assert noise.combined > 3.0 and flat.combined > 3.0
    assert noise.colour > itself.colour and flat.spectrum > itself.spectrum


def test_score_is_repeatable_and_reports_every_part(pebbles_64):
    a, b = score(pebbles_64, pebbles_64), score(pebbles_64, pebbles_64)
    assert a == b
    assert set(a.as_dict()) == {"combined", "patches", "colour", "spectrum", "per_scale", "shape"}


def test_too_small_images_are_refused(pebbles_64):
    with pytest.raises(ImageError, match="too small to score"):
        score(torch.rand(1, 3, 16, 16), pebbles_64)


@pytest.mark.slow
def test_model_figures_of_an_untrained_model_are_poor_but_defined(pebbles_64):
    figures = model_figures(NCA(NCAConfig(channels=4, hidden=8)), pebbles_64, size=64)
    assert figures.at_1024.combined > 2.0 and figures.heal_ratio == pytest.approx(1.0, rel=0.05)


@pytest.mark.slow
def test_a_model_that_blows_up_after_some_damage_fails_the_heal_bar():
    """A real model (starry sky, --match 0.04) that grows well but blows up after most damage events.

    One heal, with the first trial's random firing, healed it; the figure is the worst of
    several heals, so the blow-up counts. Scored at the bundled figures' own 128 px: the
    rollout is chaotic, so which heals blow up differs from CPU to CPU, and on a 64 px grid
    one CPU healed all three (at 128 px it blew up with every seed tried on that CPU, and
    with seed 0 on the CPU that trained it).
    """
    folder = Path(__file__).parent / "data" / "sky_blows_up"
    target = load_target(folder / "target.png", 128)
    figures = model_figures(load_folder(folder), target)
    assert figures.at_1024.combined < 2.0 and figures.at_4096.combined < 2.0
    assert figures.heal_ratio > 1.25


def test_streaks_score_worse_than_the_same_texture_turned(pebbles_path):
    """A radial spectrum is blind to orientation; the score's spectrum is cut into sectors to see streaks."""
    import torch.nn.functional as F

    target = load_target(pebbles_path, 256)
    half = target[..., :128, :128]
    turned = torch.rot90(target[..., 128:, 128:], 1, (2, 3))  # the same pebbles, a quarter turn: still isotropic
    streaks = F.interpolate(target[..., 128:, 128:192], size=(128, 128), mode="bilinear", align_corners=False)
    assert score(streaks, half).spectrum > 2.0 * score(turned, half).spectrum


def _stripes(angle: float, side: int = 128, period: float = 9.0) -> torch.Tensor:
    """Sine stripes running at `angle` degrees, counter-clockwise on screen from left-to-right."""
    import math

    y, x = torch.meshgrid(torch.arange(side).float(), torch.arange(side).float(), indexing="ij")
    t = math.radians(angle)
    across = -x * math.sin(t) - y * math.cos(t)  # distance across the stripes, screen y pointing down
    return (torch.sin(across * 2 * math.pi / period) * 0.5 + 0.5).expand(1, 3, side, side)


@pytest.mark.parametrize("angle", [0, 30, 60, 90, 150])
def test_orientation_reads_the_direction_of_stripes(angle):
    found = orientation(_stripes(angle))
    assert angle_difference(found.angle, angle) < 1.0
    assert found.coherence > 0.95


def test_orientation_turns_with_a_real_texture_and_is_weak_for_round_grains(pebbles_path):
    brick = load_target(Path(__file__).parents[1] / "models" / "brick_gray" / "target.png", 128)
    upright, turned = orientation(brick), orientation(torch.rot90(brick, 1, (2, 3)))
    assert angle_difference(turned.angle, upright.angle + 90) < 1.0
    assert turned.coherence == pytest.approx(upright.coherence, rel=1e-3)
    pebbles = orientation(load_target(pebbles_path, 128))
    assert pebbles.coherence < 0.5 * upright.coherence


def test_angle_difference_wraps_at_180_degrees():
    assert angle_difference(175, 5) == pytest.approx(10)
    assert angle_difference(0, 90) == pytest.approx(90)
    assert angle_difference(30, 210) == pytest.approx(0)
