"""The quality score: 1.0 is the target's own floor; noise and flat images are far above it."""

import pytest
import torch

from nca_gradio.images import ImageError
from nca_gradio.model import NCA
from nca_gradio.quality import model_figures, score


def test_the_target_scores_near_its_floor_and_noise_far_above(pebbles_64, pebbles_path):
    from nca_gradio.images import load_target

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
    assert set(a.as_dict()) == {"combined", "patches", "colour", "spectrum", "per_scale"}


def test_too_small_images_are_refused(pebbles_64):
    with pytest.raises(ImageError, match="too small to score"):
        score(torch.rand(1, 3, 16, 16), pebbles_64)


def test_model_figures_of_an_untrained_model_are_poor_but_defined(pebbles_64):
    figures = model_figures(NCA(channels=4, hidden=8), pebbles_64, size=64)
    assert figures.at_1024.combined > 2.0 and figures.heal_ratio == pytest.approx(1.0, rel=0.05)


def test_streaks_score_worse_than_the_same_texture_turned(pebbles_path):
    """A radial spectrum is blind to orientation; the score's spectrum is cut into sectors to see streaks."""
    import torch.nn.functional as F

    from nca_gradio.images import load_target

    target = load_target(pebbles_path, 256)
    half = target[..., :128, :128]
    turned = torch.rot90(target[..., 128:, 128:], 1, (2, 3))  # the same pebbles, a quarter turn: still isotropic
    streaks = F.interpolate(target[..., 128:, 128:192], size=(128, 128), mode="bilinear", align_corners=False)
    assert score(streaks, half).spectrum > 2.0 * score(turned, half).spectrum
