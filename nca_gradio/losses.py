"""Texture losses: how far an image's texture statistics are from the target's.

- `gram`: the original lesson's VGG16 Gram-matrix loss.
- `ot`: sliced optimal transport on VGG16 features and the normalised pixels (Self-Organising Textures, PyTorch).
- `patch`: a weight-free multi-scale patch sliced Wasserstein loss; needs no download.

Every loss takes images of shape (B, 3, H, W) with values around [0, 1] and
compares each image of the batch with the target on its own.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .errors import UserError

VGG_LOSSES = ("ot", "gram")  # need pretrained VGG16; they see objects already, so patch matching is not theirs
LOSS_NAMES = ("auto", "patch", *VGG_LOSSES)
VGG_LAYERS = (1, 6, 11, 18, 25)
VGG_MODEL_NAME = "vgg16.tv_in1k"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class LossUnavailable(UserError, RuntimeError):
    """A loss cannot be built here (for example VGG16 weights cannot be downloaded)."""


# ----------------------------------------------------------------------------- sliced OT


def sort_last(x: torch.Tensor) -> torch.Tensor:
    """Sort along the last dimension, differentiably.

    On the CPU, torch.sort is several times slower than NumPy's sorts (which
    use SIMD sorting networks), and sorting is most of the cost of a sliced
    loss; so there the order comes from NumPy and the values are gathered by
    torch, which keeps the gradient.
    """
    if x.device.type != "cpu" or x.dtype not in (torch.float32, torch.float64):
        return x.sort(dim=-1).values
    if not x.requires_grad:
        return torch.from_numpy(np.sort(x.detach().numpy(), axis=-1))
    order = torch.from_numpy(np.argsort(x.detach().numpy(), axis=-1))
    return x.gather(-1, order)


def sliced_ot(
    source: torch.Tensor, target_sorted_fn: Callable[[torch.Tensor], torch.Tensor], proj: torch.Tensor, reduction: str = "mean"
) -> torch.Tensor:
    """Squared sliced Wasserstein distance of each batch item against the target.

    source: (B, D, N) samples; proj: (D, P) unit directions;
    target_sorted_fn(proj) -> (P, M) sorted target projections, resampled to N.
    `reduction` "mean" averages the squared differences over directions and
    samples (a level's size does not weigh it); "sum" adds them up, as
    Self-Organising Textures does, so larger layers weigh more.
    """
    source_sorted = sort_last(torch.einsum("bdn,dp->bpn", source, proj))
    target_sorted = target_sorted_fn(proj)
    n = source_sorted.shape[-1]
    if target_sorted.shape[-1] != n:
        target_sorted = F.interpolate(target_sorted[None], size=n, mode="nearest")[0]
    squared = (source_sorted - target_sorted[None]).square()
    return squared.sum(dim=(1, 2)) if reduction == "sum" else squared.mean(dim=(1, 2))


def random_directions(dim: int, count: int, device: torch.device, generator: torch.Generator | None = None) -> torch.Tensor:
    """(dim, count) unit directions drawn uniformly from the sphere."""
    directions = torch.randn(dim, count, device=device, generator=generator)
    return F.normalize(directions, dim=0)


def covariance_root(samples: torch.Tensor) -> torch.Tensor:
    """R with R @ R.T the covariance of (N, D) samples, so R @ z ~ N(0, cov) for z ~ N(0, I)."""
    centred = samples - samples.mean(0, keepdim=True)
    eigval, eigvec = torch.linalg.eigh(centred.T @ centred / max(1, centred.shape[0] - 1))
    return eigvec * eigval.clamp_min(0).sqrt()


def shaped_directions(
    root: torch.Tensor, count: int, device: torch.device, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Unit directions, half drawn from N(0, R R^T) (where the target varies), half uniform."""
    dim = root.shape[0]
    shaped = root @ torch.randn(dim, count // 2, device=device, generator=generator)
    uniform = torch.randn(dim, count - count // 2, device=device, generator=generator)
    return F.normalize(torch.cat([shaped, uniform], dim=1), dim=0)


# ----------------------------------------------------------------------------- VGG losses


def imagenet_normalize(img: torch.Tensor) -> torch.Tensor:
    mean = img.new_tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = img.new_tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (img - mean) / std


def load_vgg16_features(pretrained: bool = True) -> nn.Module:
    """VGG16's convolutional part up to layer 25, frozen, from timm.

    Raises LossUnavailable with a one-line reason when the weights cannot be had.
    """
    try:
        import timm
    except ImportError as exc:  # pragma: no cover - timm is a dependency
        raise LossUnavailable("timm is not installed: pip install timm") from exc
    if pretrained and not _weights_reachable():
        raise LossUnavailable(
            f"pretrained {VGG_MODEL_NAME} weights are not cached and the Hugging Face Hub cannot be reached: "
            "use --loss patch, which needs no download"
        )
    try:
        vgg = timm.create_model(VGG_MODEL_NAME, pretrained=pretrained)
    except Exception as exc:  # noqa: BLE001 - whatever stops the download, the loss is unavailable here
        raise LossUnavailable(
            f"could not load pretrained {VGG_MODEL_NAME} weights (offline?): use --loss patch, "
            f"which needs no download ({type(exc).__name__})"
        ) from None
    return vgg.features[: max(VGG_LAYERS) + 1]


def _weights_reachable(timeout: float = 3.0) -> bool:
    """True when the VGG16 weights are cached, or the Hub answers: avoids a minute of retries offline."""
    import os
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants, try_to_load_from_cache

    for filename in ("model.safetensors", "pytorch_model.bin"):
        cached = try_to_load_from_cache(f"timm/{VGG_MODEL_NAME}", filename)
        if isinstance(cached, str):
            return True
    if constants.HF_HUB_OFFLINE:
        return False
    endpoint = urlparse(os.environ.get("HF_ENDPOINT") or constants.ENDPOINT)
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        socket.create_connection((endpoint.hostname, port), timeout=timeout).close()
    except OSError:
        return False
    return True


class VGGFeatures(nn.Module):
    """ImageNet-normalised input (applied once) through frozen VGG16 features."""

    def __init__(self, features: nn.Module, layers: tuple[int, ...] = VGG_LAYERS) -> None:
        super().__init__()
        self.features = features.eval()
        for p in self.features.parameters():
            p.requires_grad_(False)
        self.layers = layers

    def forward(self, img: torch.Tensor) -> list[torch.Tensor]:
        x = imagenet_normalize(img)
        outputs = []
        for i, layer in enumerate(self.features[: max(self.layers) + 1]):
            x = layer(x)
            if i in self.layers:
                outputs.append(x)
        return outputs


class GramLoss(nn.Module):
    """The lesson's loss: mean squared difference of Gram matrices at VGG16 layers 1, 6, 11, 18, 25.

    `loss(x).mean()` is the lesson's StyleLoss of the batch, less its two defects: it normalised the target
    twice, and a batch of one to three images got an extra axis (tests/test_loss_reference.py).
    """

    def __init__(self, target: torch.Tensor, features: nn.Module) -> None:
        super().__init__()
        self.vgg = VGGFeatures(features).to(target.device)
        with torch.no_grad():
            self.target_grams = [g for g in map(self.gram, self.vgg(target))]

    @staticmethod
    def gram(f: torch.Tensor) -> torch.Tensor:
        h, w = f.shape[-2:]
        return torch.einsum("bchw,bdhw->bcd", f, f) / (h * w)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return sum((self.gram(f) - g).square().mean(dim=(1, 2)) for f, g in zip(self.vgg(img), self.target_grams))


class OTLoss(nn.Module):
    """Self-Organising Textures' loss: sliced OT between VGG16 feature distributions and the normalised pixels.

    Per style (the ImageNet-normalised image, then VGG16 layers 1, 6, 11, 18,
    25), the image's samples and the target's are projected on random unit
    directions (new ones each call), sorted, the target resampled to the
    image's length, and the squared differences summed over directions and
    samples: each image's score is its part of the reference's batch sum, so
    `loss(x).sum()` is the reference and the trainer's batch mean is the
    reference divided by the batch size, overflow included (README, "Which
    losses are verified"; tests/test_loss_reference.py).
    """

    def __init__(self, target: torch.Tensor, features: nn.Module, projections: int = 32) -> None:
        super().__init__()
        self.vgg = VGGFeatures(features).to(target.device)
        self.projections = projections
        with torch.no_grad():
            self.target_features = [f.flatten(2)[0] for f in self.styles(target)]

    def styles(self, img: torch.Tensor) -> list[torch.Tensor]:
        return [imagenet_normalize(img), *self.vgg(img)]

    def draw_directions(self, device: torch.device) -> list[torch.Tensor]:
        """One (channels, projections) matrix of random unit directions per style."""
        return [random_directions(t.shape[0], self.projections, device) for t in self.target_features]

    def forward(self, img: torch.Tensor, directions: list[torch.Tensor] | None = None) -> torch.Tensor:
        """(B,) scores; `directions` (as `draw_directions` returns) replaces the random draw, to compare with other code."""
        directions = directions if directions is not None else self.draw_directions(img.device)
        total = img.new_zeros(img.shape[0])
        for f, t, proj in zip(self.styles(img), self.target_features, directions):
            total = total + sliced_ot(f.flatten(2), lambda p, t=t: sort_last(p.T @ t), proj.to(img.dtype), reduction="sum")
        return total


# ----------------------------------------------------------------------------- patch loss


def chroma(img: torch.Tensor) -> torch.Tensor:
    """Each pixel's colour with its own grey taken out: (B, 3, H, W), summing to zero over the channels."""
    return img - img.mean(dim=1, keepdim=True)


def mean_chroma(img: torch.Tensor) -> float:
    """How colourful an image is: the mean length of its pixels' chroma (0 for a grey photo, 0.13-0.55 for the zoo's colour ones)."""
    return float(chroma(img.float()).norm(dim=1).mean())


def extract_patches(img: torch.Tensor, size: int) -> torch.Tensor:
    """All size x size patches of each image: (B, 3*size*size, N)."""
    return F.unfold(img, size)


class PatchLoss(nn.Module):
    """Weight-free multi-scale patch sliced Wasserstein loss.

    Plain random directions are nearly blind to spatial structure: for a random
    unit direction w, E[w^T S w] = trace(S)/D whatever the patch covariance S,
    so noise with the right colours scores as well as the texture. Half of the
    directions here are therefore drawn from the target's own patch covariance
    (w ~ N(0, S)), which weights the directions along which the target really
    varies: its shapes, edges and shading at each scale of the pyramid.

    Each level is divided by its total patch variance, so the coarse levels
    (where average pooling has removed most of the variance) still pull; a
    separate term matches the colour distribution of single pixels, and another
    the power spectrum in rings and 8 orientation sectors: the size of the grain
    and which way it runs. Without the sectors (a radial average, weighed 0.1)
    trained stripes lost their direction, leaning one way whatever the target's.
    On a grey or nearly grey target a last term matches small patches of
    chroma (`chroma_distance`), so that the rule grows no colour speckle; it
    fades out as the target gets colourful, where it cost pebbles its stones.

    Sliced marginals of patches are blind to objects: pixels optimised against
    them come out as bricks without joints, or mush in the target's colours,
    which they rate better than a real crop. `match_weight` (0 = off) adds
    bidirectional patch matching at each level: every generated patch is
    pulled towards its nearest target patch, and every target patch towards its
    nearest generated one, which asks for patches copied from the target, as
    patch-based synthesis does; the second half stops a collapse onto the few
    patches easiest to copy. A small weight keeps the target's palette; a large
    one trades it for flat patches that are easy to copy.

    `max_target_patches` caps the target patches (and pixels) kept per level,
    `max_samples` the generated ones scored per call (`subsample`).

    Unlike `ot` and `gram`, whose texture gradient outweighs the overflow penalty's, this loss is small beside it
    (a few hundred times smaller on a grid slightly out of range): cells are held firmly in range, and by eye that is
    what grows whole, rounded stones rather than grains and scales. It is kept so on purpose (RESEARCH.md, the
    overflow trial); `tests/test_loss_reference.py` holds the ratio.
    """

    levels = 4  # pyramid levels, each average-pooled to half the size of the last
    patch_size = 5
    spectrum_bins = 16  # rings of normalised frequency in the spectrum term
    spectrum_angles = 8  # orientation sectors of each ring: which way stripes and grain run
    spectrum_soft = True  # each frequency shared between its two nearest sectors: a small turn still moves the loss
    spectrum_weight = 0.3
    chroma_patch_size = 3
    grey_chroma_weight = 4.0  # the chroma term on a grey photo: 1 halved the speckle, 4 took it to the loss's own optimum
    chroma_fades_out_at = 0.1  # target mean chroma where the term is off: below every colourful texture tried (pebbles 0.13)

    def __init__(
        self,
        target: torch.Tensor,
        *,
        match_weight: float = 0.0,
        projections: int = 256,
        max_target_patches: int = 4096,
        max_samples: int = 1024,
    ) -> None:
        super().__init__()
        self.match_weight = match_weight
        self.projections = projections
        self.max_samples = max_samples
        self.level_weights: list[float] = []
        generator = torch.Generator().manual_seed(0)
        self.target_patches: list[torch.Tensor] = []
        self.covariance_roots: list[torch.Tensor] = []
        with torch.no_grad():
            for level_img in self.pyramid(target.float()):
                patches = extract_patches(level_img, self.patch_size)[0].T.cpu()  # (N, D)
                if patches.shape[0] > max_target_patches:
                    keep = torch.randperm(patches.shape[0], generator=generator)[:max_target_patches]
                    patches = patches[keep]
                root = covariance_root(patches)
                self.target_patches.append(patches.T.contiguous().to(target.device))  # (D, N)
                self.covariance_roots.append(root.to(target.device))
                self.level_weights.append(1.0 / max(float(root.square().sum()), 1e-8))  # trace of the covariance
            pixels = target.float().flatten(2)[0]
            self.target_pixels = pixels[:, torch.randperm(pixels.shape[1], generator=generator)[:max_target_patches]]
            self.colour_variance = max(float(self.target_pixels.var(dim=1).sum()), 1e-8)  # the colour term is divided by it, as the levels are
            # drawn after the pixels, so a colour target's loss (weight 0) samples the target as before the term
            chroma_patches = extract_patches(chroma(target.float()), self.chroma_patch_size)[0]  # (D, N)
            keep = torch.randperm(chroma_patches.shape[1], generator=generator)[:max_target_patches]
            self.target_chroma = chroma_patches[:, keep].contiguous()
            self.chroma_weight = self.grey_chroma_weight * max(0.0, 1.0 - mean_chroma(target) / self.chroma_fades_out_at)
            self.target = target.float()
            self._target_spectra: dict[tuple[int, int], torch.Tensor] = {}

    def pyramid(self, img: torch.Tensor) -> list[torch.Tensor]:
        out = [img]
        for _ in range(self.levels - 1):
            if min(out[-1].shape[-2:]) < 2 * self.patch_size:
                break
            out.append(F.avg_pool2d(out[-1], 2))
        return out

    def directions(self, level: int, device: torch.device) -> torch.Tensor:
        return shaped_directions(self.covariance_roots[level], self.projections, device)

    def subsample(self, samples: torch.Tensor) -> torch.Tensor:
        """A random subset of each image's (B, D, N) samples: sorting dominates the cost, and SW stays unbiased."""
        n = samples.shape[-1]
        if n <= self.max_samples:
            return samples
        return samples[:, :, torch.randperm(n, device=samples.device)[: self.max_samples]]

    def sliced(self, level: int, source: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
        """(B,) sliced distance of generated patches (B, D, N) to the target's at `level`, along (D, P) `directions`."""
        target = self.target_patches[level]
        return sliced_ot(source, lambda p: sort_last(p.T @ target.to(p.dtype)), directions)

    def level_loss(self, level: int, source: torch.Tensor) -> torch.Tensor:
        """(B,) distance of generated patches (B, D, N) to the target's at one pyramid level, before its level weight."""
        loss = self.sliced(level, source, self.directions(level, source.device).to(source.dtype))
        if self.match_weight:
            target = self.target_patches[level]
            loss = loss + self.match_weight * nearest_patch_distance(source, target)
            loss = loss + self.match_weight * completeness_distance(source, target, self.max_samples)
        return loss

    def spectrum(self, img: torch.Tensor, tile: tuple[int, int]) -> torch.Tensor:
        """(B, K) what the spectrum term compares: the log power in rings and sectors, on tiles of one size."""
        return tiled_log_spectrum(img, tile, self.spectrum_bins, self.spectrum_angles, self.spectrum_soft)

    def spectrum_distance(self, img: torch.Tensor) -> torch.Tensor:
        """Mean absolute log-spectrum difference, on tiles the size of the smaller of the image and the target."""
        tile = (min(img.shape[-2], self.target.shape[-2]), min(img.shape[-1], self.target.shape[-1]))
        if tile not in self._target_spectra:
            with torch.no_grad():
                self._target_spectra[tile] = self.spectrum(self.target, tile)
        return (self.spectrum(img, tile) - self._target_spectra[tile]).abs().mean(dim=-1)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        total = img.new_zeros(img.shape[0])
        for level, level_img in enumerate(self.pyramid(img)):
            if level >= len(self.target_patches):
                break
            source = self.subsample(extract_patches(level_img, self.patch_size))
            total = total + self.level_loss(level, source) * self.level_weights[level]
        proj = random_directions(3, 32, img.device)
        colour = sliced_ot(self.subsample(img.flatten(2)), lambda p: sort_last(p.T @ self.target_pixels), proj)
        total = total + colour / self.colour_variance
        if self.chroma_weight:  # 0 draws no directions: the loss before the term, to the last bit
            total = total + self.chroma_weight * self.chroma_distance(img)
        return total + self.spectrum_weight * self.spectrum_distance(img)

    def chroma_distance(self, img: torch.Tensor) -> torch.Tensor:
        """(B,) sliced distance of small patches of chroma to the target's, divided by its pixel variance as the colour term is.

        The spectrum sees luminance only, the colour term single pixels, and on a grey photo the shaped directions
        carry no colour at all, so nothing else asks neighbouring pixels to agree in hue: without this the rule grew
        pink and green speckle on grey photos. The target's chroma variance is not the divisor, as a grey photo has none.
        """
        source = self.subsample(extract_patches(chroma(img), self.chroma_patch_size))
        proj = random_directions(source.shape[1], 64, img.device).to(source.dtype)
        target = self.target_chroma.to(source.dtype)
        return sliced_ot(source, lambda p: sort_last(p.T @ target), proj) / self.colour_variance


def tiled_log_spectrum(img: torch.Tensor, tile: tuple[int, int], bins: int, angles: int = 1, soft: bool = False) -> torch.Tensor:
    """(B, K) `log_spectrum` averaged over each image's tiles of one size (Welch's method).

    Two images of different sizes compared on tiles of one size have the same
    frequency cells, and averaging tiles steadies the estimate.
    """
    th, tw = tile
    tiles = img.unfold(2, th, th).unfold(3, tw, tw)  # (B, C, rows, cols, th, tw)
    b, c, rows, cols = tiles.shape[:4]
    tiles = tiles.permute(0, 2, 3, 1, 4, 5).reshape(b * rows * cols, c, th, tw)
    return log_spectrum(tiles, bins, angles, soft).view(b, rows * cols, -1).mean(dim=1)


def squared_distances(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(B, N, M) squared distances between source patches (B, D, N) and target patches (D, M)."""
    return source.square().sum(1)[..., None] - 2 * source.transpose(1, 2) @ target + target.square().sum(0)


def nearest_patch_distance(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(B,) mean squared distance from each source patch (B, D, N) to its nearest target patch (D, M).

    Sliced marginals can match while no single patch looks like the target's
    (noise in the target's colours passes them); this pulls every patch towards
    a real one, as patch-based texture optimisation (Kwatra et al. 2005) does.
    """
    with torch.no_grad():
        nearest = squared_distances(source, target).argmin(dim=2)  # (B, N): the target patch nearest each source patch
    matched = target.T[nearest]  # (B, N, D)
    return (source.transpose(1, 2) - matched).square().sum(-1).mean(-1)


def completeness_distance(source: torch.Tensor, target: torch.Tensor, samples: int = 1024) -> torch.Tensor:
    """(B,) mean squared distance from (a random subset of) the target patches to their nearest source patches.

    The other half of bidirectional similarity (Simakov et al. 2008): every kind
    of target patch must appear somewhere, which forbids collapsing onto the few
    patches easiest to copy.
    """
    keep = target[:, torch.randperm(target.shape[1], device=target.device)[:samples]]  # (D, M)
    with torch.no_grad():
        nearest = squared_distances(source, keep).argmin(dim=1)  # (B, M): the source patch nearest each target patch
    matched = source.gather(2, nearest[:, None, :].expand(-1, source.shape[1], -1))  # (B, D, M)
    return (matched - keep[None]).square().sum(1).mean(-1)


def log_spectrum(img: torch.Tensor, bins: int = 16, angles: int = 1, soft: bool = False) -> torch.Tensor:
    """(B, K) log power of each image's luminance in rings of normalised frequency, cut into `angles` sectors.

    Normalised frequencies make images of different sizes comparable; the
    innermost ring (with DC) and empty cells are dropped, so K depends only on
    the image size, bins and angles. One sector is the radial average (the size
    of the grain); several also see orientation, which a radial average cannot:
    parallel streaks and round grains of one size have the same radial spectrum.
    `soft` shares each frequency between its two nearest sectors (`spectrum_cells`).
    """
    grey = img.mean(dim=1)
    return ring_sector_log_power(grey - grey.mean(dim=(-2, -1), keepdim=True), bins, angles, soft)


def ring_sector_log_power(grey: torch.Tensor, bins: int, angles: int, soft: bool, floor: float = 1e-8) -> torch.Tensor:
    """(B, K) the log of the mean power of (B, h, w) zero-mean images in each ring and sector (`spectrum_cells`)."""
    h, w = grey.shape[-2:]
    power = torch.fft.rfft2(grey).abs().square().flatten(1) / (h * w)
    cells, shares, kept, count = spectrum_cells(h, w, bins, angles, soft, grey.device)
    total = power.new_zeros(power.shape[0], bins * angles)
    for cell, share in zip(cells, shares):
        total.index_add_(1, cell, power * share.to(power.dtype))
    return torch.log(total.index_select(1, kept) / count.to(power.dtype) + floor)


@functools.lru_cache(maxsize=64)
def spectrum_cells(h: int, w: int, bins: int, angles: int, soft: bool, device: torch.device) -> tuple:
    """For `log_spectrum` of an h x w image: each frequency's cells and its share of each, the cells kept, their counts.

    Hard sectors give each frequency to one cell, so a turn within a sector
    changes nothing and a loss on them has no gradient towards the right angle
    there; `soft` shares it between the two sectors whose centres it lies
    between, by how near each is (orientation wraps at 180 degrees), so power
    moves smoothly from sector to sector as a texture turns. They depend on the
    shape alone and are found once: finding the kept cells reads a count back to
    the host, which a CUDA graph's capture cannot do.
    """
    fy = torch.fft.fftfreq(h, device=device)[:, None]
    fx = torch.fft.rfftfreq(w, device=device)[None, :]
    ring = ((fy.square() + fx.square()).sqrt() / 0.5 * bins).long().clamp(max=bins - 1)
    position = (torch.atan2(fy, fx) / math.pi + 0.5) * angles  # fx >= 0: the angle in [-pi/2, pi/2], in sectors
    if soft:
        low = (position - 0.5).floor()  # the sector centre at or before this frequency
        upper_share = position - 0.5 - low
        parts = [(low.long() % angles, 1.0 - upper_share), ((low.long() + 1) % angles, upper_share)]
    else:
        parts = [(position.long().clamp(0, angles - 1), torch.ones_like(position))]
    cells = [(ring * angles + sector).flatten() for sector, _ in parts]
    shares = [share.expand_as(ring).flatten() for _, share in parts]
    count = torch.zeros(bins * angles, device=device)
    for cell, share in zip(cells, shares):
        count.index_add_(0, cell, share)
    kept = ((count > 0) & (torch.arange(bins * angles, device=device) >= angles)).nonzero().squeeze(1)
    return cells, shares, kept, count[kept]


# ----------------------------------------------------------------------------- choosing a loss


def build_loss(
    name: str,
    target: torch.Tensor,
    vgg_features: nn.Module | None = None,
    log: Callable[[str], None] = lambda message: None,
    match_weight: float = 0.0,
) -> tuple[nn.Module, str]:
    """Build the named loss for a target image (1, 3, H, W) in [0, 1].

    `auto` takes `ot` when pretrained VGG16 loads and `patch` otherwise, and
    says which through `log`. `vgg_features` replaces the download (tests hand
    in a randomly initialised VGG16). `match_weight` weighs the patch loss's
    bidirectional patch matching (`PatchLoss`); VGG losses see objects
    already and ignore it. Returns the loss and the name chosen.
    """
    if name not in LOSS_NAMES:
        raise ValueError(f"unknown loss {name!r}: choose one of {', '.join(LOSS_NAMES)}")
    if name == "auto":
        try:
            features = vgg_features if vgg_features is not None else load_vgg16_features()
        except LossUnavailable:
            log("loss auto: pretrained VGG16 is not available here, using the weight-free patch loss")
            return PatchLoss(target, match_weight=match_weight), "patch"
        log("loss auto: pretrained VGG16 loaded, using the ot loss" + (" (patch matching is for the patch loss: off)" if match_weight else ""))
        return OTLoss(target, features), "ot"
    if name == "patch":
        return PatchLoss(target, match_weight=match_weight), "patch"
    features = vgg_features if vgg_features is not None else load_vgg16_features()
    loss_class = GramLoss if name == "gram" else OTLoss
    return loss_class(target, features), name


def overflow_loss(x: torch.Tensor) -> torch.Tensor:
    """Penalty for cell states outside [-1, 1] (keeps long rollouts bounded)."""
    return (x - x.clamp(-1.0, 1.0)).abs().sum() / x.shape[0]


__all__ = [
    "LOSS_NAMES",
    "GramLoss",
    "LossUnavailable",
    "OTLoss",
    "PatchLoss",
    "build_loss",
    "load_vgg16_features",
    "overflow_loss",
]
