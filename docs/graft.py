"""Write docs/graft.jpg, the README's picture of `nca graft`: bundled models grafted by a split, a circle and a grey ramp.

    python docs/graft.py [--size 288] [--steps 512]    # after pip install -e . (or with PYTHONPATH=.)

Each tile is what `nca graft A B --split ...` (or `--mask` with a left-to-right ramp) grows from an empty grid, seed 0.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from PIL import Image
from textures import ROOT, contact_sheet

from nca_gradio.graft import Graft, split_mask
from nca_gradio.loading import load_folder
from nca_gradio.render import grow

GRAFTS = (  # (label, A, B, mask maker)
    ("split: pebbles | starry_sky", "pebbles", "starry_sky", lambda n: split_mask("vertical", n, n)),
    ("circle: hubble_dots in pebbles", "pebbles", "hubble_dots", lambda n: split_mask("circle", n, n)),
    ("ramp: pebbles to starry_sky", "pebbles", "starry_sky", lambda n: torch.linspace(0, 1, n).expand(n, n).contiguous()),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=288, help="canvas side in cells")
    parser.add_argument("--steps", type=int, default=512)
    parser.add_argument("-o", "--output", type=Path, default=ROOT / "docs" / "graft.jpg")
    args = parser.parse_args()
    tiles = []
    for label, a, b, mask in GRAFTS:
        graft = Graft(load_folder(ROOT / "models" / a), load_folder(ROOT / "models" / b), mask(args.size))
        tiles.append((label, Image.fromarray(grow(graft, size=args.size, steps=args.steps, every=args.steps).final)))
    contact_sheet(tiles, args.size, columns=len(tiles)).save(args.output, quality=88)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
