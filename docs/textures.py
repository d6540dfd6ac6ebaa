"""Write docs/textures.jpg, the README's first picture: every bundled model's texture as `nca grow` grows it.

    python docs/textures.py [--size 192] [--steps 1024]    # after pip install -e . (or with PYTHONPATH=.)

Each tile is the last frame of `render.grow` (seed 0) from an empty grid, with the model's name below it,
so the picture shows what a user gets from the bundled models, not their targets.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from nca_gradio.loading import load_folder
from nca_gradio.render import grow

ROOT = Path(__file__).resolve().parents[1]

COLUMNS = 4
GAP = 8
LABEL = 26


def grown_tiles(size: int, steps: int) -> list[tuple[str, Image.Image]]:
    """(name, final frame) for every model folder under models/, in name order."""
    folders = sorted(p.parent for p in (ROOT / "models").glob("*/config.json"))
    return [(f.name, Image.fromarray(grow(load_folder(f), size=size, steps=steps, every=steps).final)) for f in folders]


def contact_sheet(tiles: list[tuple[str, Image.Image]], size: int, columns: int = COLUMNS) -> Image.Image:
    """The tiles in rows of `columns` on white, each named underneath."""
    rows = -(-len(tiles) // columns)
    sheet = Image.new("RGB", (columns * (size + GAP) + GAP, rows * (size + LABEL + GAP) + GAP), "white")
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=16)
    for i, (name, tile) in enumerate(tiles):
        x = GAP + (i % columns) * (size + GAP)
        y = GAP + (i // columns) * (size + LABEL + GAP)
        sheet.paste(tile, (x, y))
        draw.text((x + size // 2, y + size + LABEL // 2), name, fill="black", font=font, anchor="mm")
    return sheet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=192, help="canvas side in cells")
    parser.add_argument("--steps", type=int, default=1024)
    parser.add_argument("-o", "--output", type=Path, default=ROOT / "docs" / "textures.jpg")
    args = parser.parse_args()
    contact_sheet(grown_tiles(args.size, args.steps), args.size).save(args.output, quality=88)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
