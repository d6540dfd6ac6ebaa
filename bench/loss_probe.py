"""What a texture loss asks for: optimise the pixels of an image directly against it, no NCA in the way.

Run: python bench/loss_probe.py TARGET OUT.png [--size 64] [--steps 400] [--loss-kw '{"nearest_weight": 0.02}']

An NCA trained on a loss can at best grow what that loss rates well. Optimising
pixels takes seconds to minutes where training a model takes a quarter of an
hour, so a loss variant can be screened here first: if the optimised image
does not look like the target, no model trained on that loss will
(RESEARCH.md, session 5). OUT.png shows the target beside two optimised
images started from different noise. `--loss-kw` passes keyword arguments to
`loss_terms.ResearchPatchLoss`: the library's patch loss with the research terms.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.loss_terms import ResearchPatchLoss
from nca_gradio.images import load_target, tensor_to_image


def optimise_pixels(loss_fn: torch.nn.Module, size: int, steps: int, lr: float, images: int = 2, seed: int = 0) -> torch.Tensor:
    """(images, 3, size, size) images in [0, 1] optimised by Adam from grey plus noise to minimise `loss_fn`."""
    generator = torch.Generator().manual_seed(seed)
    pixels = (0.4 + 0.2 * torch.rand(images, 3, size, size, generator=generator)).requires_grad_()
    optimiser = torch.optim.Adam([pixels], lr=lr)
    for _ in range(steps):
        loss = loss_fn(pixels.clamp(0, 1)).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return pixels.detach().clamp(0, 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", help="texture image")
    parser.add_argument("out", help="PNG to write: target | two optimised images")
    parser.add_argument("--size", type=int, default=64, help="side of the target (cropped and resized) and of the images")
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--lr", type=float, default=0.03)
    parser.add_argument("--loss-kw", default="{}", help="JSON keyword arguments for ResearchPatchLoss")
    args = parser.parse_args()
    target = load_target(args.target, args.size)
    loss_fn = ResearchPatchLoss(target, **json.loads(args.loss_kw))
    start = time.perf_counter()
    images = optimise_pixels(loss_fn, args.size, args.steps, args.lr)
    seconds = time.perf_counter() - start
    with torch.no_grad():
        final = loss_fn(images).tolist()
    row = torch.cat([target, *images.split(1)], dim=-1)
    tensor_to_image(row).resize((row.shape[-1] * 3, args.size * 3)).save(args.out)
    print(f"loss {', '.join(f'{v:.4f}' for v in final)} after {args.steps} steps in {seconds:.0f} s; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
