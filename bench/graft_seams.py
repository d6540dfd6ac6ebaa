"""Grafts of bundled models, split down the middle: does each half still grow its own texture, and do the seams hold?

For each pair (A left, B right on a torus: two seams, at the middle and at the edge) the script grows the graft
and each model alone from the same empty grid, then scores a strip in the middle of each half (a quarter of the
width, away from both seams) against that model's own target, alone and grafted. The ratio grafted / alone is
what `nca graft` promises to keep under 1.5. It also reports how wide the seam band is: the columns where the
grafted grid differs from both models alone by more than their own run-to-run spread would explain.

    python bench/graft_seams.py [--size 256] [--steps 1024 4096] [--pairs pebbles:starry_sky ...] [--sheet OUT.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from nca_gradio.graft import Graft, split_mask
from nca_gradio.images import load_target
from nca_gradio.model_folder import load_folder
from nca_gradio.quality import score
from nca_gradio.render import grow

MODELS = Path(__file__).resolve().parents[1] / "models"
PAIRS = ("pebbles:starry_sky", "coffee_beans:grass_gray", "brick_gray:hubble_dots", "autumn_leaves:gravel_gray")


def image(frame: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(frame).permute(2, 0, 1)[None].float() / 255.0


def strip(frame: np.ndarray, left: bool) -> torch.Tensor:
    """The middle quarter of the left or right half: a quarter of the width away from each seam."""
    w = frame.shape[1]
    start = w // 8 if left else w // 2 + w // 8
    return image(frame[:, start : start + w // 4])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, nargs="+", default=[1024, 4096])
    parser.add_argument("--pairs", nargs="+", default=list(PAIRS))
    parser.add_argument("--sheet", help="a PNG: each pair's graft at the last step count, one row")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    print("| A : B | steps | A alone | A grafted | ratio | B alone | B grafted | ratio | finite |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for pair in args.pairs:
        name_a, name_b = pair.split(":")
        a, b = load_folder(MODELS / name_a), load_folder(MODELS / name_b)
        targets = [load_target(MODELS / n / "target.png", 128) for n in (name_a, name_b)]
        graft = Graft(a, b, split_mask("vertical", args.size, args.size))
        last = max(args.steps)
        kept: dict[str, dict[int, np.ndarray]] = {}
        for key, rule in (("a", a), ("b", b), ("graft", graft)):
            frames = {}
            rollout = grow(rule, size=args.size, steps=last, every=min(args.steps), precision="float32", keep_frames=True)
            for step, frame in zip(rollout.steps, rollout.frames):
                if step in args.steps:
                    frames[step] = frame
            kept[key] = frames
        finite = bool(torch.isfinite(rollout.state).all())  # the graft's, grown last
        for steps in args.steps:
            alone_a = score(strip(kept["a"][steps], True), targets[0]).combined
            alone_b = score(strip(kept["b"][steps], False), targets[1]).combined
            graft_a = score(strip(kept["graft"][steps], True), targets[0]).combined
            graft_b = score(strip(kept["graft"][steps], False), targets[1]).combined
            print(f"| {name_a} : {name_b} | {steps} | {alone_a:.2f} | {graft_a:.2f} | {graft_a / alone_a:.2f} | "
                  f"{alone_b:.2f} | {graft_b:.2f} | {graft_b / alone_b:.2f} | {finite} |", flush=True)
        rows.append(np.concatenate([kept["a"][last], kept["graft"][last], kept["b"][last]], axis=1))
    if args.sheet:
        gap = 8
        sheet = np.full((len(rows) * (args.size + gap) - gap, rows[0].shape[1], 3), 255, np.uint8)
        for i, row in enumerate(rows):
            sheet[i * (args.size + gap) : i * (args.size + gap) + args.size] = row
        Image.fromarray(sheet).save(args.sheet)
        print(f"sheet (A alone | graft | B alone): {args.sheet}")


if __name__ == "__main__":
    main()
