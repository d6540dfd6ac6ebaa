"""Portilla-Simoncelli texture statistics as a loss term beside the patch loss: issue 30's candidate, research only.

Portilla and Simoncelli (2000) describe a texture by about 700 numbers of a steerable pyramid: marginal moments,
autocorrelations of each band's magnitude and the correlations of magnitudes and phases across scales and
orientations, which is where round and outlined shapes live (pixels optimised against them grow disc-shaped
blobs on citrus, where the patch loss alone gives a mush: RESEARCH.md). The statistics come from `plenoptic`
(PyPI, not a dependency of the project: `pip install plenoptic`), computed on the target's three PCA colour
channels, whitened, as the issue proposed, and compared with plenoptic's own loss for them.

The generated grids are smaller than the target (64 against 128 px), so the target's statistics are the mean
over 64 px crops, and at 64 px the pyramid has 3 scales with 7x7 autocorrelations (4 scales need 128 px).
`weight` 1 gives a real crop of the target the same value under this term as under the patch loss.

    python bench/ps_term.py TARGET OUT.png [--size 128] [--steps 800]

optimises an image's pixels against the statistics alone (as `bench/loss_probe.py` does for the patch loss):
what the term asks for, before a training run is spent on it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.loss_probe import optimise_pixels
from nca_gradio.images import load_target, tensor_to_image

CROPS = 8  # target crops averaged into the reference statistics, and for the calibration


class PortillaSimoncelliTerm(nn.Module):
    """(B,) weighted distance of each image's Portilla-Simoncelli statistics (per PCA colour channel) to the target's."""

    def __init__(self, target: torch.Tensor, size: int, weight: float = 1.0,
                 base: Callable[[torch.Tensor], torch.Tensor] | None = None) -> None:
        super().__init__()
        from plenoptic.loss import portilla_simoncelli_loss_factory  # research only: not a project dependency
        from plenoptic.models import PortillaSimoncelli

        target = target.float()
        pixels = target.flatten(2)[0]
        self.register_buffer("mean", pixels.mean(dim=1, keepdim=True))
        values, vectors = torch.linalg.eigh(torch.cov(pixels))
        self.register_buffer("whiten", vectors.T / values.clamp_min(1e-6).sqrt()[:, None])
        self.model = PortillaSimoncelli((size, size), n_scales=3 if size < 128 else 4, spatial_corr_width=7)
        # a flat image (the empty grid, before the rule has done anything) has no variance to normalise by: NaN
        self.register_buffer("dither", 1e-3 * torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(1)))
        crops = self.crops(target, size)
        with torch.no_grad():
            stats = self.statistics(crops)  # (crops, 3, K)
            self.register_buffer("reference", stats[: CROPS // 2].mean(dim=0))
            self.distance = portilla_simoncelli_loss_factory(self.model, self.channels(crops)[:1, :1])
            self.scale = weight
            if base is not None:  # calibrated on the crops the reference left out
                held_out = crops[CROPS // 2 :]
                self.scale *= float(base(held_out).mean()) / max(float(self.raw(held_out).mean()), 1e-12)

    @staticmethod
    def crops(target: torch.Tensor, size: int) -> torch.Tensor:
        """CROPS size x size crops of the target from evenly spread corners, drawn from a fixed generator."""
        generator = torch.Generator().manual_seed(0)
        h, w = target.shape[-2:]
        ys = torch.randint(0, h - size + 1, (CROPS,), generator=generator).tolist()
        xs = torch.randint(0, w - size + 1, (CROPS,), generator=generator).tolist()
        return torch.cat([target[..., y : y + size, x : x + size] for y, x in zip(ys, xs)])

    def channels(self, img: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) the image in the target's whitened PCA colour channels."""
        b, c, h, w = img.shape
        return (self.whiten @ (img.flatten(2) - self.mean)).view(b, c, h, w)

    def statistics(self, img: torch.Tensor) -> torch.Tensor:
        """(B, 3, K) the statistics of each PCA channel."""
        b, c, h, w = img.shape
        return self.model(self.channels(img + self.dither).reshape(b * c, 1, h, w)).view(b, c, -1)

    def raw(self, img: torch.Tensor) -> torch.Tensor:
        """(B,) plenoptic's Portilla-Simoncelli loss of each image to the reference, summed over the channels."""
        stats = self.statistics(img)
        return torch.stack([sum(self.distance(stats[i, k].view(1, 1, -1), self.reference[k].view(1, 1, -1))
                                for k in range(stats.shape[1])) for i in range(stats.shape[0])])

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return self.scale * self.raw(img)


class WithPortillaSimoncelli(nn.Module):
    """A loss plus the Portilla-Simoncelli term: what `learn_faster.py --ps-weight` trains against."""

    def __init__(self, base: Callable[[torch.Tensor], torch.Tensor], target: torch.Tensor, size: int, weight: float) -> None:
        super().__init__()
        self.base = base
        self.ps = PortillaSimoncelliTerm(target, size, weight, base)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return self.base(img) + self.ps(img)


def main() -> int:
    parser = argparse.ArgumentParser(description="pixels optimised against Portilla-Simoncelli statistics alone")
    parser.add_argument("target", help="texture image")
    parser.add_argument("out", help="PNG to write: target | two optimised images")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--lr", type=float, default=0.02)
    args = parser.parse_args()
    torch.set_num_threads(1)
    target = load_target(args.target, args.size)
    term = PortillaSimoncelliTerm(target, args.size)
    images = optimise_pixels(term, args.size, args.steps, args.lr)
    with torch.no_grad():
        final = term(images).tolist()
    tensor_to_image(torch.cat([target, *images.split(1)], dim=-1)).save(args.out)
    print(f"loss {', '.join(f'{v:.3g}' for v in final)} after {args.steps} steps; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
