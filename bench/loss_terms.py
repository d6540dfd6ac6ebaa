"""Patch-loss terms that were tried and left out of the library: the research behind `nca_gradio.losses`.

`ResearchPatchLoss` is the library's `PatchLoss` with every option RESEARCH.md's
trials used (sessions 2, 3 and 5): an oriented spectrum, oriented directions,
nearest-patch and completeness terms of their own weights, Gram matrices of a
random network, semi-dual optimal transport, the sliced term's weight and the
patch size; and issue 30's candidates: random multi-scale ReLU features by
sliced OT (`RandomFeatureSliced`), a per-channel spectrum and the distribution
of local spectra (`LocalOrientationSpectra`). With no options it is `PatchLoss`;
`chroma_weight` sets the chroma term's weight whatever the target's colour;
0 is the patch loss before that term, to the last bit.
`bench/loss_probe.py --loss-kw` passes its keyword arguments.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from nca_gradio.losses import (
    PatchLoss,
    completeness_distance,
    covariance_root,
    nearest_patch_distance,
    random_directions,
    ring_sector_log_power,
    shaped_directions,
    sliced_ot,
    sort_last,
    squared_distances,
    tiled_log_spectrum,
)


def oriented_directions(size: int, orientations: int) -> torch.Tensor:
    """(3 * size * size, 2 * orientations) unit directions: luminance derivative-of-Gaussian filters at evenly spaced angles.

    Random directions mix so many pixels that a whole texture stretched one
    way barely changes their marginals; these (first and second derivatives
    along each angle, Heeger and Bergen's oriented subbands) see it at once.
    """
    r = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    y, x = torch.meshgrid(r, r, indexing="ij")
    gauss = torch.exp(-(x.square() + y.square()) / (2 * (size / 4) ** 2))
    filters = []
    for k in range(orientations):
        angle = math.pi * k / orientations
        u = x * math.cos(angle) + y * math.sin(angle)
        filters += [u * gauss, (u.square() - u.square().mean()) * gauss]
    kernels = torch.stack(filters).flatten(1)  # (2 * orientations, size * size)
    kernels = kernels - kernels.mean(dim=1, keepdim=True)
    return F.normalize(kernels.repeat(1, 3), dim=1).T  # the same filter on each colour: luminance


def random_filter_bank(sizes: tuple[int, ...], filters: int, seed: int, device: torch.device) -> list[torch.Tensor]:
    """Per size k, (filters, 3, k, k) random filters of zero mean and unit norm, drawn in order from one seed."""
    generator = torch.Generator().manual_seed(seed)
    bank = []
    for k in sizes:
        w = torch.randn(filters, 3, k, k, generator=generator)
        w = w - w.mean(dim=(1, 2, 3), keepdim=True)
        bank.append((w / w.flatten(1).norm(dim=1).view(-1, 1, 1, 1)).to(device))
    return bank


class RandomFeatureGram(nn.Module):
    """Gram matrices of a shallow random ReLU network: 3x3 to 11x11 filters at three scales.

    Ustyuzhaninov et al. (2017) found that one layer of random filters of many
    sizes, with Gram matrices, already synthesises natural textures. Unlike
    sliced patch marginals it sees co-occurrence: pebble-coloured grain scores
    4x a real crop of the pebbles target, streaks 13x.
    """

    def __init__(self, target: torch.Tensor, sizes: tuple[int, ...] = (3, 5, 7, 11), filters: int = 128,
                 scales: int = 3, seed: int = 0) -> None:
        super().__init__()
        self.scales = scales
        self.weights = random_filter_bank(sizes, filters, seed + 7, target.device)
        with torch.no_grad():
            self.target_grams = {key: g[0] for key, g in self.grams(target.float()).items()}

    def grams(self, img: torch.Tensor) -> dict[tuple[int, int], torch.Tensor]:
        """(B, F, F) Gram matrix per (scale, filter size); a filter larger than the image at a scale is skipped."""
        out = {}
        x = img - 0.5
        for scale in range(self.scales):
            if scale:
                x = F.avg_pool2d(x, 2)
            for w in self.weights:
                k = w.shape[-1]
                if min(x.shape[-2:]) <= k:
                    continue
                f = F.relu(F.conv2d(F.pad(x, [k // 2] * 4, mode="circular"), w.to(x.dtype))).flatten(2)
                out[scale, k] = f @ f.transpose(1, 2) / f.shape[-1]
        return out

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        total = img.new_zeros(img.shape[0])
        for key, g in self.grams(img).items():
            if key in self.target_grams:  # a target smaller than the image lacks its coarsest, largest filters
                t = self.target_grams[key]
                total = total + (g - t).square().sum(dim=(1, 2)) / t.square().sum()
        return total


class RandomFeatureSliced(nn.Module):
    """One layer of random ReLU filters of many sizes, matched by sliced optimal transport of per-pixel feature vectors.

    Ustyuzhaninov et al. (2017): a single random layer with filters from 3 to 55 px rivals VGG on many textures (with
    Gram matrices there). Here each pixel's vector of filter responses, at the image and at half its size, is compared
    with the target's by sliced Wasserstein (Heitz et al.'s SOT on VGG layers, on random features instead): the joint
    distribution of responses, which sees where a large filter finds a whole object and a small one its rim.
    """

    def __init__(self, target: torch.Tensor, sizes: tuple[int, ...] = (3, 5, 7, 11, 15), filters: int = 24,
                 scales: int = 2, projections: int = 64, max_samples: int = 1024, seed: int = 0) -> None:
        super().__init__()
        self.scales, self.projections, self.max_samples = scales, projections, max_samples
        self.weights = random_filter_bank(sizes, filters, seed + 11, target.device)
        with torch.no_grad():
            self.target_features = [f[0] for f in self.features(target.float())]  # per scale (F, N)
            self.variances = [max(float(f.var(dim=1).sum()), 1e-8) for f in self.target_features]

    def features(self, img: torch.Tensor) -> list[torch.Tensor]:
        """Per scale, (B, F, N): every filter's ReLU response at every pixel (filters wider than the image skipped)."""
        out, x = [], img - 0.5
        for scale in range(self.scales):
            if scale:
                x = F.avg_pool2d(x, 2)
            maps = [F.relu(F.conv2d(F.pad(x, [w.shape[-1] // 2] * 4, mode="circular"), w.to(x.dtype)))
                    for w in self.weights if w.shape[-1] < min(x.shape[-2:])]
            out.append(torch.cat(maps, dim=1).flatten(2))
        return out

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        total = img.new_zeros(img.shape[0])
        for feats, target, variance in zip(self.features(img), self.target_features, self.variances):
            if feats.shape[1] != target.shape[0]:
                continue  # a generated grid smaller than the target lacks the widest filters
            n = feats.shape[-1]
            if n > self.max_samples:
                feats = feats[:, :, torch.randperm(n, device=feats.device)[: self.max_samples]]
            proj = random_directions(target.shape[0], self.projections, img.device).to(feats.dtype)
            total = total + sliced_ot(feats, lambda p: sort_last(p.T @ target.to(p.dtype)), proj) / variance
        return total


def local_spectra(img: torch.Tensor, tile: int, stride: int, bins: int, angles: int) -> torch.Tensor:
    """(B, K, T): the log power of each `tile` x `tile` window (Hann-tapered, `stride` apart), in rings and soft sectors.

    One vector per window, not their mean: where `log_spectrum` on the whole image says which orientations occur,
    these say which occur *together*, so a painting whose strokes turn from place to place differs from a mottle
    with the same global spectrum. The taper keeps the window's edges from adding a cross of power at 0 and 90 degrees.
    """
    grey = img.mean(dim=1, keepdim=True)
    windows = F.unfold(grey, tile, stride=stride)  # (B, tile*tile, T)
    b, _, t = windows.shape
    windows = windows.transpose(1, 2).reshape(b * t, tile, tile)
    windows = windows - windows.mean(dim=(-2, -1), keepdim=True)
    hann = torch.hann_window(tile, periodic=False, device=img.device, dtype=img.dtype)
    windows = windows * (hann[:, None] * hann[None, :])
    return ring_sector_log_power(windows, bins, angles, soft=True, floor=1e-6).view(b, t, -1).transpose(1, 2)


class LocalOrientationSpectra(nn.Module):
    """The distribution of local spectra (windows of 16 px, rings x 8 sectors), matched by sliced optimal transport.

    Issue 30's "distribution of local orientations": the library's spectrum term averages the windows, so it asks
    for the right orientations somewhere, not for each place to have one; a mottle with every orientation
    everywhere passes it. Matching the windows' joint distribution asks for the target's mixture of places: strokes
    that run one way here and another way there, reeds that lean as the target's do.
    """

    def __init__(self, target: torch.Tensor, tile: int = 16, bins: int = 4, angles: int = 8, target_stride: int = 4,
                 stride: int = 8, projections: int = 64) -> None:
        super().__init__()
        self.tile, self.bins, self.angles, self.stride, self.projections = tile, bins, angles, stride, projections
        with torch.no_grad():
            samples = local_spectra(target.float(), tile, target_stride, bins, angles)[0]  # (K, M)
            self.root = covariance_root(samples.T)
            self.variance = max(float(self.root.square().sum()), 1e-8)
            self.target_samples = samples

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        if min(img.shape[-2:]) < self.tile:
            return img.new_zeros(img.shape[0])
        source = local_spectra(img, self.tile, self.stride, self.bins, self.angles)
        proj = shaped_directions(self.root, self.projections, img.device).to(source.dtype)
        target = self.target_samples.to(source.dtype)
        return sliced_ot(source, lambda p: sort_last(p.T @ target), proj) / self.variance


class SemiDualOT(nn.Module):
    """Optimal transport from generated patches to the target's, through its semi-dual (Houdard et al., GOTEX 2023).

    Each generated patch is pulled towards the target patch j minimising
    |x - y_j|^2 - psi_j. The offsets psi are raised for target patches that too
    few generated patches pick and lowered for popular ones (stochastic ascent
    on the semi-dual, kept across calls), so every target patch gets its share:
    patches must look like real ones, as with a nearest-patch term, but cannot
    all collapse onto the few easiest to copy.
    """

    def __init__(self, target: torch.Tensor, ascent_steps: int = 10, ascent_rate: float = 0.2) -> None:
        super().__init__()
        self.target = target  # (D, M)
        self.psi = target.new_zeros(target.shape[1])
        self.ascent_steps = ascent_steps
        self.ascent_rate = ascent_rate

    def forward(self, source: torch.Tensor) -> torch.Tensor:
        """(B,) mean squared distance per dimension from each generated patch (B, D, N) to its assigned target patch."""
        target = self.target.to(source.dtype)
        m = target.shape[1]
        with torch.no_grad():
            cost = squared_distances(source.detach(), target).flatten(0, 1)  # (B*N, M)
            step = self.ascent_rate * float(cost.min(dim=1).values.mean()) * m
            for _ in range(self.ascent_steps):
                chosen = (cost - self.psi).argmin(dim=1)
                share = torch.bincount(chosen, minlength=m).to(cost.dtype) / chosen.numel()
                self.psi += step * (1.0 / m - share)
                self.psi -= self.psi.mean()
            chosen = (cost - self.psi).argmin(dim=1).view(source.shape[0], -1)  # (B, N)
        matched = target.T[chosen]  # (B, N, D)
        return (source.transpose(1, 2) - matched).square().mean(dim=(1, 2))


class ResearchPatchLoss(PatchLoss):
    """`PatchLoss` with the research terms; each option at its default leaves the loss as the library's.

    The terms are added in the order the trials used, so their figures in RESEARCH.md can be reproduced.
    `options` are `PatchLoss`'s own (projections, max_target_patches, max_samples); `nearest_weight` and
    `completeness_weight` take the place of its `match_weight`, which weighs both at once.
    """

    def __init__(
        self,
        target: torch.Tensor,
        *,
        patch_size: int = PatchLoss.patch_size,
        spectrum_bins: int = PatchLoss.spectrum_bins,
        spectrum_angles: int = PatchLoss.spectrum_angles,
        spectrum_weight: float = PatchLoss.spectrum_weight,
        spectrum_soft: bool = PatchLoss.spectrum_soft,
        spectrum_per_channel: bool = False,
        orientations: int = 0,
        nearest_weight: float = 0.0,
        completeness_weight: float = 0.0,
        random_gram_weight: float = 0.0,
        random_sliced_weight: float = 0.0,
        local_orientation_weight: float = 0.0,
        chroma_weight: float | None = None,
        semidual_weight: float = 0.0,
        semidual_rate: float = 0.2,
        semidual_from_level: int = 0,
        sliced_weight: float = 1.0,
        **options,
    ) -> None:
        if "match_weight" in options:
            raise TypeError("ResearchPatchLoss weighs its matching terms apart: pass nearest_weight and completeness_weight")
        self.patch_size = patch_size  # before PatchLoss cuts the target into patches
        super().__init__(target, **options)
        self.spectrum_bins = spectrum_bins
        self.spectrum_angles = spectrum_angles
        self.spectrum_weight = spectrum_weight
        self.spectrum_soft = spectrum_soft
        self.spectrum_per_channel = spectrum_per_channel
        self.nearest_weight = nearest_weight
        self.completeness_weight = completeness_weight
        self.random_gram = RandomFeatureGram(target) if random_gram_weight else None
        self.random_gram_weight = random_gram_weight
        self.random_sliced = RandomFeatureSliced(target) if random_sliced_weight else None
        self.random_sliced_weight = random_sliced_weight
        self.local_orientation = LocalOrientationSpectra(target) if local_orientation_weight else None
        self.local_orientation_weight = local_orientation_weight
        if chroma_weight is not None:  # None: the library's, by how grey the target is; 0: the loss before the term
            self.chroma_weight = chroma_weight
        self.semidual_weight = semidual_weight
        self.semidual_from_level = semidual_from_level
        self.semidual = [SemiDualOT(t, ascent_rate=semidual_rate) for t in self.target_patches] if semidual_weight else []
        self.sliced_weight = sliced_weight
        self.oriented = oriented_directions(patch_size, orientations).to(target.device) if orientations else None

    def spectrum(self, img: torch.Tensor, tile: tuple[int, int]) -> torch.Tensor:
        """With `spectrum_per_channel`, the red, green and blue spectra side by side (against colour fringes)."""
        if not self.spectrum_per_channel:
            return super().spectrum(img, tile)
        return torch.cat([tiled_log_spectrum(img[:, c : c + 1], tile, self.spectrum_bins, self.spectrum_angles,
                                             self.spectrum_soft) for c in range(img.shape[1])], dim=-1)

    def level_loss(self, level: int, source: torch.Tensor) -> torch.Tensor:
        target = self.target_patches[level]
        loss = self.sliced_weight * self.sliced(level, source, self.directions(level, source.device).to(source.dtype))
        if self.semidual and level >= self.semidual_from_level:
            loss = loss + self.semidual_weight * self.semidual[level](source)
        if self.oriented is not None:  # as much weight as all the random directions together
            loss = loss + self.sliced(level, source, self.oriented.to(source.dtype))
        if self.nearest_weight:
            loss = loss + self.nearest_weight * nearest_patch_distance(source, target)
        if self.completeness_weight:
            loss = loss + self.completeness_weight * completeness_distance(source, target, self.max_samples)
        return loss

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        total = super().forward(img)
        if self.random_gram is not None:
            total = total + self.random_gram_weight * self.random_gram(img)
        if self.random_sliced is not None:
            total = total + self.random_sliced_weight * self.random_sliced(img)
        if self.local_orientation is not None:
            total = total + self.local_orientation_weight * self.local_orientation(img)
        return total


class Pooled(nn.Module):
    """`loss` (built on the target average-pooled `factor` times) of the grown image pooled the same way.

    Issue 30's coarse-first trial: a rule's early attractor stays (the diagonal waves, a warm start's ridges), and
    the full loss's finest terms set it to grain. Seen only through pooling, the first iterations can ask for
    nothing finer than `factor` cells: the objects' size and layout, before their detail.
    """

    def __init__(self, loss: nn.Module, factor: int) -> None:
        super().__init__()
        self.loss = loss
        self.factor = factor

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return self.loss(F.avg_pool2d(img, self.factor))
