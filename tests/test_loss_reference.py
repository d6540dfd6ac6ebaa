"""The VGG losses against their published formulations, written out independently here.

`ot` is checked against Self-Organising Textures (Niklasson et al. 2021), PyTorch notebook
`texture_nca_pytorch.ipynb`, "VGG16 Sliced OT Style Model": per style (the ImageNet-normalised
pixels and VGG16 layers 1, 6, 11, 18, 25), project on random unit directions, sort both sides,
resample the sorted target to the source's length (nearest), and sum the squared differences
over directions, samples and the batch. `gram` is checked against the lesson in ../shared/seed/,
with its defects corrected: it normalised the target twice and took `len(x) < 4` for "has no
batch axis" (a batch of one to three images got a fifth axis). Both sides get the same randomly
initialised VGG16 (no pretrained weights here) and the same directions, so a match cannot be luck.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nca_gradio.losses import GramLoss, OTLoss, PatchLoss, overflow_loss
from nca_gradio.model import to_rgb

STYLE_LAYERS = (1, 6, 11, 18, 25)
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


# ----------------------------------------------------------------------------- the references, plainly


def reference_styles(vgg: nn.Module, img: torch.Tensor) -> list[torch.Tensor]:
    """(B, C, N) samples per style: the normalised pixels, then each style layer's activations."""
    x = (img - MEAN) / STD
    styles = [x.reshape(x.shape[0], x.shape[1], -1)]
    for i in range(max(STYLE_LAYERS) + 1):
        x = vgg[i](x)
        if i in STYLE_LAYERS:
            styles.append(x.reshape(x.shape[0], x.shape[1], -1))
    return styles


def reference_ot(vgg: nn.Module, img: torch.Tensor, target: torch.Tensor, directions: list[torch.Tensor]) -> torch.Tensor:
    """The Self-Organising Textures loss of a batch: one number, summed over styles, directions, samples and images."""
    total = img.new_zeros(())
    for source, tgt, proj in zip(reference_styles(vgg, img), reference_styles(vgg, target), directions):
        source_sorted = torch.sort(torch.einsum("bcn,cp->bpn", source, proj), dim=-1).values
        target_sorted = torch.sort(torch.einsum("bcn,cp->bpn", tgt, proj), dim=-1).values
        n, m = source_sorted.shape[-1], target_sorted.shape[-1]
        nearest = torch.arange(n) * m // n  # sample i of n takes sample floor(i * m / n) of m
        total = total + (source_sorted - target_sorted[..., nearest]).square().sum()
    return total


def reference_gram(vgg: nn.Module, img: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The lesson's StyleLoss of a batch, normalising each image once: mean squared Gram difference, summed over layers."""

    def grams(x: torch.Tensor) -> list[torch.Tensor]:
        x = (x - MEAN) / STD
        out = []
        for i in range(max(STYLE_LAYERS) + 1):
            h, w = x.shape[-2:]  # the layer input's size, as the lesson takes it
            x = vgg[i](x)
            if i in STYLE_LAYERS:
                out.append(torch.einsum("bchw, bdhw -> bcd", x, x) / (h * w))
        return out

    return sum((f1 - f2).pow(2).mean() for f1, f2 in zip(grams(img), grams(target)))


# ----------------------------------------------------------------------------- equivalence

VGG_CHANNELS = (3, 64, 128, 256, 512, 512)  # the normalised pixels, then layers 1, 6, 11, 18, 25


PAIR_NAMES = (
    "64 px noise against a 128 px target",
    "96 px blurred crop against a 64 px target",
    "40 px near-grey against a 48 px target",
)


def image_pairs(pebbles_path) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """(image batch, target) pairs of different sizes: what training compares, and more."""
    from nca_gradio.images import load_target

    g = torch.Generator().manual_seed(1)
    big, small = load_target(pebbles_path, 128), load_target(pebbles_path, 64)
    pairs = [
        (torch.rand(2, 3, 64, 64, generator=g), big),
        (F.avg_pool2d(big[..., :96, :96], 5, 1, 2) * 0.8 + 0.1, small),
        (0.5 + 0.1 * torch.rand(3, 3, 40, 40, generator=g), load_target(pebbles_path, 48)),
    ]
    return dict(zip(PAIR_NAMES, pairs))


def shared_directions(seed: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [F.normalize(torch.randn(c, 32, generator=g), dim=0) for c in VGG_CHANNELS]


def value_and_gradient(fn, img: torch.Tensor) -> tuple[float, torch.Tensor]:
    x = img.clone().requires_grad_(True)
    value = fn(x)
    value.backward()
    return float(value.detach()), x.grad


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(F.cosine_similarity(a.flatten().double(), b.flatten().double(), dim=0))



@pytest.mark.parametrize("pair", PAIR_NAMES)
@pytest.mark.slow
def test_ot_equals_self_organising_textures(pair, pebbles_path, random_vgg):
    """`ot` summed over the batch is the reference's loss; its gradient points the same way."""
    img, target = image_pairs(pebbles_path)[pair]
    directions = shared_directions(seed=PAIR_NAMES.index(pair))
    loss = OTLoss(target, random_vgg)
    ours, our_grad = value_and_gradient(lambda x: loss(x, directions).sum(), img)
    reference, reference_grad = value_and_gradient(lambda x: reference_ot(random_vgg, x, target, directions), img)
    assert ours == pytest.approx(reference, rel=1e-5)
    assert cosine(our_grad, reference_grad) >= 0.999


def test_the_trainers_ot_objective_is_the_reference_divided_by_the_batch(pebbles_path, random_vgg):
    """texture.mean() + overflow_loss (train.py) against the reference's loss + summed overflow, on one grid."""
    img, target = image_pairs(pebbles_path)[PAIR_NAMES[0]]
    grid = torch.cat([img - 0.5, torch.zeros(img.shape[0], 9, *img.shape[-2:])], dim=1)
    grid[:, 5, :4, :4] = 1.2  # a few cells out of range
    directions = shared_directions(seed=7)
    loss = OTLoss(target, random_vgg)
    ours = loss(to_rgb(grid, clamp=False), directions).mean() + overflow_loss(grid)
    reference = reference_ot(random_vgg, to_rgb(grid, clamp=False), target, directions) + (grid - grid.clamp(-1, 1)).abs().sum()
    assert float(ours) == pytest.approx(float(reference) / grid.shape[0], rel=1e-5)


@pytest.mark.parametrize("pair", PAIR_NAMES)
def test_gram_equals_the_lessons_style_loss(pair, pebbles_path, random_vgg):
    """`gram` averaged over the batch is the lesson's StyleLoss (normalising once); same gradient direction."""
    img, target = image_pairs(pebbles_path)[pair]
    loss = GramLoss(target, random_vgg)
    ours, our_grad = value_and_gradient(lambda x: loss(x).mean(), img)
    reference, reference_grad = value_and_gradient(lambda x: reference_gram(random_vgg, x, target), img)
    assert ours == pytest.approx(reference, rel=1e-5)
    assert cosine(our_grad, reference_grad) >= 0.999


# ----------------------------------------------------------------------------- overflow balance


def slightly_out_of_range_grid(seed: int = 3) -> torch.Tensor:
    """A batch of 4 grids (12 channels, 64 px) in range, but for 1% of cell values 0.05 beyond +-1."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(4, 12, 64, 64, generator=g) - 0.5
    out = torch.rand(x.shape, generator=g) < 0.01
    return torch.where(out, torch.sign(x) * 1.05, x)


def overflow_to_texture_gradient(loss: nn.Module, grid: torch.Tensor) -> float:
    """|d overflow / d grid| over |d texture / d grid|, both as train.py weighs them (texture.mean() + overflow_loss)."""
    texture_grid = grid.clone().requires_grad_(True)
    loss(to_rgb(texture_grid, clamp=False)).mean().backward()
    overflow_grid = grid.clone().requires_grad_(True)
    overflow_loss(overflow_grid).backward()
    return float(overflow_grid.grad.norm() / texture_grid.grad.norm())


def test_ot_overflow_balance_is_the_references(pebbles_path, random_vgg):
    """About 0.003: overflow nudges, texture leads (it was about 1,600 before `ot` summed like the reference).

    The pixel term needs no weights, so pretrained VGG16 only adds texture gradient: this bound holds there too.
    """
    from nca_gradio.images import load_target

    target, grid = load_target(pebbles_path, 128), slightly_out_of_range_grid()
    loss = OTLoss(target, random_vgg)
    torch.manual_seed(0)
    ratio = overflow_to_texture_gradient(loss, grid)
    assert ratio < 0.01, ratio
    directions = shared_directions(seed=0)
    image = to_rgb(grid, clamp=False).requires_grad_(True)
    reference_ot(random_vgg, image, target, directions).backward()
    reference_ratio = float(torch.sign(grid)[grid.abs() > 1].norm() / image.grad.norm())  # d|x - clamp(x)|/dx = sign(x) outside
    ours = overflow_to_texture_gradient(lambda img: loss(img, directions), grid)
    assert ours == pytest.approx(reference_ratio, rel=1e-4)


def test_gram_overflow_balance_at_the_lessons_loss_scale(pebbles_path, random_vgg):
    """About 0.01 at the lesson's loss scale (the lesson itself: 40x that, 0.1 x Gram + overflow summed over 4 images).

    A Gram loss grows with the fourth power of the activations, and random weights make them tiny (the
    loss reads 0.01 here), so the random VGG16's first layer is scaled until the loss reads 1e4, what the
    lesson's log shows with pretrained weights early in training (0.1 x loss = 1,258 at iteration 108).
    """
    import copy

    from nca_gradio.images import load_target

    target, grid = load_target(pebbles_path, 128), slightly_out_of_range_grid()
    raw = float(GramLoss(target, random_vgg)(to_rgb(grid, clamp=False)).mean())
    scaled = copy.deepcopy(random_vgg)
    with torch.no_grad():
        scaled[0].weight *= (1e4 / raw) ** 0.25  # no biases in a random VGG16: every Gram matrix scales by the same factor^2
    loss = GramLoss(target, scaled)
    assert float(loss(to_rgb(grid, clamp=False)).mean()) == pytest.approx(1e4, rel=1e-3)
    assert overflow_to_texture_gradient(loss, grid) < 0.05


def test_patch_overflow_outweighs_texture_a_few_hundred_times(pebbles_path):
    """About 340x (seeds 0-2: 335-349), where `ot` and `gram` stay under 0.05: kept on purpose (PatchLoss's docstring).

    The strong overflow term is what grows whole, rounded stones by eye; the score cannot see that, so the balance is
    held here as it is, and changes only when a measure that sees shapes says otherwise (issue 30).
    """
    from nca_gradio.images import load_target

    torch.manual_seed(0)
    ratio = overflow_to_texture_gradient(PatchLoss(load_target(pebbles_path, 128)), slightly_out_of_range_grid())
    assert 100 < ratio < 1000, ratio
