"""Texture losses: near zero for the target against itself, clearly larger against noise."""

import importlib.util
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from helpers import ROOT

from nca_gradio.losses import GramLoss, LossUnavailable, OTLoss, PatchLoss, build_loss, load_vgg16_features, overflow_loss


def _noise_like(target: torch.Tensor) -> torch.Tensor:
    return torch.rand(target.shape, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("name", ["patch", "ot", "gram"])
def test_loss_is_near_zero_on_the_target_and_large_on_noise(name, pebbles_64, random_vgg):
    torch.manual_seed(0)
    loss, chosen = build_loss(name, pebbles_64, vgg_features=random_vgg)
    assert chosen == name
    self_loss = loss(pebbles_64).item()
    noise_loss = loss(_noise_like(pebbles_64)).item()
    flat_loss = loss(torch.full_like(pebbles_64, 0.5)).item()
    assert self_loss < 0.05 * noise_loss, (self_loss, noise_loss)
    assert self_loss < 0.05 * flat_loss, (self_loss, flat_loss)


def test_losses_score_each_batch_item_and_pass_gradients(pebbles_64, random_vgg):
    for loss in (PatchLoss(pebbles_64), OTLoss(pebbles_64, random_vgg), GramLoss(pebbles_64, random_vgg)):
        batch = torch.cat([pebbles_64, _noise_like(pebbles_64)]).requires_grad_(True)
        values = loss(batch)
        assert values.shape == (2,) and values[0] < values[1]
        values.sum().backward()
        assert batch.grad is not None and torch.isfinite(batch.grad).all() and batch.grad.abs().sum() > 0


def test_patch_loss_prefers_the_texture_to_shuffled_pixels(pebbles_64):
    """Same colours, no structure: the loss must see the difference (plain random projections barely do)."""
    torch.manual_seed(0)
    loss = PatchLoss(pebbles_64)
    flat = pebbles_64.flatten(2)
    shuffled = flat[:, :, torch.randperm(flat.shape[-1])].view_as(pebbles_64)
    assert loss(pebbles_64).item() < 0.2 * loss(shuffled).item()


def test_patch_loss_works_at_a_different_size_than_the_target(pebbles_64):
    loss = PatchLoss(pebbles_64)
    assert loss(torch.rand(3, 3, 40, 48)).shape == (3,)


def test_auto_falls_back_to_patch_offline_and_says_so(pebbles_64, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    messages = []
    loss, chosen = build_loss("auto", pebbles_64, log=messages.append)
    assert chosen == "patch" and isinstance(loss, PatchLoss)
    assert "patch" in messages[0] and "VGG16" in messages[0]


def test_auto_uses_ot_when_vgg_is_available(pebbles_64, random_vgg):
    messages = []
    loss, chosen = build_loss("auto", pebbles_64, vgg_features=random_vgg, log=messages.append)
    assert chosen == "ot" and isinstance(loss, OTLoss) and "ot" in messages[0]


@pytest.mark.parametrize("name", ["gram", "ot"])
def test_explicit_vgg_loss_without_weights_fails_clearly(name, pebbles_64, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    with pytest.raises(LossUnavailable, match="--loss patch"):
        build_loss(name, pebbles_64)


def test_match_weight_adds_bidirectional_patch_matching_to_the_patch_loss(pebbles_64, random_vgg):
    loss, _ = build_loss("patch", pebbles_64, match_weight=0.02)
    assert loss.match_weight == 0.02
    noise = _noise_like(pebbles_64)
    torch.manual_seed(0)
    plain = PatchLoss(pebbles_64)(noise)
    torch.manual_seed(0)
    assert loss(noise) > plain  # the terms are really there
    messages = []
    _, chosen = build_loss("auto", pebbles_64, vgg_features=random_vgg, log=messages.append, match_weight=0.02)
    assert chosen == "ot" and "patch matching is for the patch loss: off" in messages[0]


def test_unknown_loss_name_is_refused(pebbles_64):
    with pytest.raises(ValueError, match="choose one of"):
        build_loss("l2", pebbles_64)


def test_vgg_features_normalise_once(random_vgg):
    """The lesson normalised the target twice; here the loss sees the raw [0, 1] image once."""
    from nca_gradio.losses import VGGFeatures, imagenet_normalize

    img = torch.rand(1, 3, 32, 32)
    features = VGGFeatures(random_vgg)
    expected = random_vgg[:2](imagenet_normalize(img))
    assert torch.allclose(features(img)[0], expected, atol=1e-6)


def test_overflow_loss_is_zero_in_range_and_grows_outside():
    assert overflow_loss(torch.rand(2, 4, 8, 8) * 2 - 1).item() == 0.0
    assert overflow_loss(torch.full((1, 4, 8, 8), 1.5)).item() == pytest.approx(0.5 * 4 * 64)


def test_load_vgg16_reports_an_unreachable_hub(monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    with pytest.raises(LossUnavailable, match="cannot be reached"):
        load_vgg16_features()


def sine_stripes(angle: float, side: int = 96, period: float = 9.0) -> torch.Tensor:
    """(1, 3, side, side) stripes running at `angle` degrees, brown on tan."""
    y, x = torch.meshgrid(torch.arange(side).float(), torch.arange(side).float(), indexing="ij")
    turn = math.radians(angle + 90)  # the wave travels across the stripes
    wave = torch.sin((x * math.cos(turn) - y * math.sin(turn)) * 2 * math.pi / period)
    return (torch.tensor([0.55, 0.4, 0.25]).view(1, 3, 1, 1) + 0.2 * wave).clamp(0, 1)


@pytest.mark.parametrize("turn", [30, 45, 90])
def test_the_patch_loss_sees_which_way_stripes_run(turn):
    """The spectrum term's sectors: the same stripes, turned, are far from the target; a crop of it is near.

    A radial average (the term before the sectors) put them only 5-27x farther, about as far as a change of grain size.
    """
    loss = PatchLoss(sine_stripes(0))
    same, turned = sine_stripes(0)[..., 5:69, 3:67], sine_stripes(turn)[..., :64, :64]
    assert loss.spectrum_distance(turned).item() > 100 * loss.spectrum_distance(same).item()


@pytest.fixture(scope="module")
def loss_terms():
    """bench/loss_terms.py, the research terms that bench/loss_probe.py screens."""
    spec = importlib.util.spec_from_file_location("loss_terms", Path(__file__).resolve().parents[1] / "bench" / "loss_terms.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_patch_loss_refuses_colour_speckle_on_a_grey_photo():
    """Speckle of chroma 0.03 on a grey photo (what the rule grew on grass_gray and gravel_gray before the chroma term):
    the pixel colour term and the luminance spectrum barely see it, the patches of chroma almost double the loss."""
    from nca_gradio.images import load_target

    target = load_target(ROOT / "models" / "grass_gray" / "target.png", 128)
    crop = target[..., 64:, 64:]
    noise = 0.03 * torch.randn(crop.shape, generator=torch.Generator().manual_seed(1))
    speckled = (crop + noise - noise.mean(dim=1, keepdim=True)).clamp(0, 1)  # the same grey, hue added per pixel

    def cost_of_speckle(chroma_weight: float) -> float:
        loss = PatchLoss(target)
        loss.chroma_weight = chroma_weight
        values = []
        for img in (crop, speckled):
            torch.manual_seed(0)
            values.append(float(loss(img)))
        return values[1] / values[0]

    assert cost_of_speckle(0.0) < 1.1  # without the term: blind, as the retrained grey models showed
    assert PatchLoss(target).chroma_weight == pytest.approx(PatchLoss.grey_chroma_weight)
    assert cost_of_speckle(PatchLoss.grey_chroma_weight) > 1.5


def test_the_chroma_term_fades_out_on_colourful_targets(pebbles_64):
    """Pebbles grew fine grain instead of lumpy stones with the term at full weight: colour textures keep the loss as it was."""
    assert PatchLoss(pebbles_64).chroma_weight == 0.0
    grey = pebbles_64.mean(dim=1, keepdim=True).expand_as(pebbles_64)
    tinted = 0.95 * grey + 0.05 * pebbles_64  # a faint tint: a weight between none and the grey photo's
    assert 0.0 < PatchLoss(tinted).chroma_weight < PatchLoss.grey_chroma_weight


@pytest.mark.parametrize(("library", "research"), [
    ({}, {}),
    ({"match_weight": 0.02}, {"nearest_weight": 0.02, "completeness_weight": 0.02}),
])
def test_research_patch_loss_at_the_library_options_is_the_library_loss(library, research, pebbles_64, loss_terms):
    """The research figures are comparable with the library's only while the bench's loss, so set, computes the same."""
    img = _noise_like(pebbles_64).requires_grad_(True)
    torch.manual_seed(0)
    expected = PatchLoss(pebbles_64, **library)(img)
    (expected_grad,) = torch.autograd.grad(expected.sum(), img)
    torch.manual_seed(0)
    value = loss_terms.ResearchPatchLoss(pebbles_64, **research)(img)
    (grad,) = torch.autograd.grad(value.sum(), img)
    assert torch.equal(value, expected) and torch.equal(grad, expected_grad)


@pytest.mark.parametrize("option", [
    {"spectrum_angles": 6, "spectrum_bins": 8},
    {"orientations": 4},
    {"nearest_weight": 0.5},
    {"completeness_weight": 0.5},
    {"random_gram_weight": 1.0},
    {"semidual_weight": 1.0, "semidual_from_level": 2},
    {"patch_size": 7},
    {"random_sliced_weight": 100.0},
    {"local_orientation_weight": 1.0},
])
def test_research_terms_rank_the_texture_above_noise_and_pass_gradients(option, pebbles_path, loss_terms):
    """The research terms of RESEARCH.md's trials, on the library's patch loss: each must still prefer the texture and train."""
    from nca_gradio.images import load_target

    target = load_target(pebbles_path, 128)
    plain, extended = PatchLoss(target), loss_terms.ResearchPatchLoss(target, **option)
    crop, noise = target[..., 64:, 64:], torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(0)
    assert extended(crop) < extended(noise)
    torch.manual_seed(0)
    base = plain(noise)
    torch.manual_seed(0)
    assert not torch.allclose(extended(noise), base)  # the option really adds a term
    img = noise.clone().requires_grad_(True)
    extended(img).sum().backward()
    assert torch.isfinite(img.grad).all() and img.grad.abs().sum() > 0


def test_local_spectra_see_whole_slices_where_the_mean_spectrum_sees_their_phase_scrambled_grain(loss_terms):
    """Issue 30's finding: the library's loss rates a crop of citrus whose phases are scrambled (its grain and
    directions, no slices) about as well as the crop itself; the distribution of local spectra does not."""
    from nca_gradio.images import load_target

    target = load_target(ROOT / "models" / "citrus_slices" / "target.png", 128)
    crop = target[:, :, 10:74, 20:84]
    noise = torch.fft.fft2(torch.randn(crop.shape[-2:], generator=torch.Generator().manual_seed(0)))
    phase = noise / noise.abs().clamp_min(1e-8)
    phase[0, 0] = 1  # the mean colour stays
    scrambled = torch.fft.ifft2(torch.fft.fft2(crop) * phase).real.clamp(0, 1)
    torch.manual_seed(0)
    library = PatchLoss(target)
    assert library.spectrum_distance(scrambled) < 1.2 * library.spectrum_distance(crop)
    torch.manual_seed(0)
    assert library(scrambled) < 1.5 * library(crop)  # barely worse: slices and their scramble are alike to it
    local = loss_terms.LocalOrientationSpectra(target)
    assert local(scrambled) > 10 * local(crop)


def test_the_coarse_first_loss_is_blind_to_detail_finer_than_its_pooling(pebbles_64, loss_terms):
    """Issue 30's coarse-first trial asks the first iterations for the layout alone: a 2x2 checker of any strength
    (which 2x pooling averages away) must not move the pooled loss, while the full loss sees it."""
    coarse = loss_terms.Pooled(PatchLoss(F.avg_pool2d(pebbles_64, 2)), 2)
    grown = torch.roll(pebbles_64, (20, 9), (-2, -1)).flip(-1)  # not the target itself, where both losses are near 0
    checker = (torch.arange(64).view(-1, 1) + torch.arange(64)).remainder(2).float() - 0.5  # each 2x2 block sums to 0
    checkered = grown + 0.2 * checker
    full, values = PatchLoss(pebbles_64), []
    for img in (grown, checkered):
        torch.manual_seed(0)
        values.append((float(coarse(img)), float(full(img))))
    assert values[1][0] == pytest.approx(values[0][0], rel=1e-4)
    assert values[1][1] > 1.1 * values[0][1]  # 1.19x


def test_semidual_offsets_spread_generated_patches_over_the_target_where_nearest_matching_collapses(loss_terms):
    """The point of the semi-dual (trial P): plain nearest matching sends a clump of patches to one target patch."""
    from nca_gradio.losses import squared_distances

    generator = torch.Generator().manual_seed(0)
    target = torch.randn(8, 64, generator=generator)  # (D, M)
    clump = target[:, :1] + 0.05 * torch.randn(1, 8, 256, generator=generator)  # (B, D, N): all near target patch 0

    def used(offsets):
        return len((squared_distances(clump, target)[0] - offsets).argmin(dim=1).unique())

    ot = loss_terms.SemiDualOT(target)
    assert used(ot.psi) == 1
    for _ in range(50):
        distance = ot(clump)
    assert used(ot.psi) >= 32  # most target patches now get their share
    assert float(distance) > float(squared_distances(clump, target).min(dim=2).values.mean()) / 8  # and it pulls apart


def test_oriented_spectrum_tells_streaks_apart_by_direction_where_the_radial_one_cannot(pebbles_path):
    import torch.nn.functional as F

    from nca_gradio.images import load_target
    from nca_gradio.losses import tiled_log_spectrum

    target = load_target(pebbles_path, 256)
    streaks = F.interpolate(target[..., 128:, 128:192], size=(128, 128), mode="bilinear", align_corners=False)
    turned = torch.rot90(streaks, 1, (2, 3))  # the same streaks, the other way: the same radial spectrum

    def gap(angles):
        a, b = (tiled_log_spectrum(x, (64, 64), 12, angles) for x in (streaks, turned))
        return float((a - b).abs().mean())

    assert gap(1) < 0.1 and gap(6) > 10 * gap(1)


def test_soft_sectors_share_each_frequency_between_the_two_nearest_sector_centres():
    """8 sectors of 22.5 degrees, centred at -78.75, -56.25, ... 78.75 degrees of frequency angle (fx >= 0)."""
    from nca_gradio.losses import spectrum_cells

    cells, shares, _, _ = spectrum_cells(64, 64, 4, 8, True, torch.device("cpu"))
    width = 33  # rfft columns
    total = torch.zeros(64 * width)
    for share in shares:
        total += share
    assert torch.allclose(total, torch.ones_like(total))  # all of every frequency's power is given out

    def given(fy: int, fx: int) -> dict[int, float]:
        i = (fy % 64) * width + fx
        return {int(cell[i]) % 8: round(float(share[i]), 3) for cell, share in zip(cells, shares) if float(share[i]) > 0}

    assert given(0, 5) == {3: 0.5, 4: 0.5}  # 0 degrees lies between the centres at -11.25 and 11.25
    assert given(5, 0) == {7: 0.5, 0: 0.5}  # 90 degrees: orientation wraps, so the last sector and the first share it
    centre = math.tan(math.radians(33.75))  # the centre of sector 5
    fx, fy = 20, round(20 * centre)
    assert given(fy, fx)[5] > 0.9


@pytest.mark.slow
def test_card_names_the_loss_auto_chose(tmp_path, pebbles_64, random_vgg, tiny_config):
    """A model trained with `--loss auto` where VGG16 loads says on its card, and in its command, that it trained with ot."""
    from nca_gradio.card import model_card
    from nca_gradio.train import Trainer

    config = tiny_config(loss="auto", iters=2)
    trainer = Trainer(pebbles_64, config, vgg_features=random_vgg, log=lambda message: None)
    trainer.train(None)
    trainer.save(tmp_path / "model", pebbles_64)
    card = model_card(tmp_path / "model")
    assert "| loss | ot |" in card and "--loss ot " in card
