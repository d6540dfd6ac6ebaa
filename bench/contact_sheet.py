"""A contact sheet of loss trials: per texture, the target and what each arm grew, with today's scores under each.

    python bench/contact_sheet.py --arms base=/tmp/lo/base_{t} lo=/tmp/lo/lo_{t} --textures pebbles citrus_slices \
        --out docs/research/local_orientation.jpg

Each arm folder is a `bench/learn_faster.py --out` run (one growth seed): its `iter_NNNN.png` is target | grown.
The grown image is scored again against the target with the library's `quality.score` as it is now (combined and
the shape ratio), so arms run on different days are compared by one measure. Prints a Markdown table of the scores.
An arm whose folder does not exist for a texture gets a blank tile.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nca_gradio.images import image_to_tensor
from nca_gradio.quality import score

LABEL_HEIGHT = 14


def halves(path: Path) -> tuple[Image.Image, Image.Image]:
    """A learn_faster image's target and its first growth (each as wide as the image is high)."""
    image = Image.open(path).convert("RGB")
    side = image.height
    return image.crop((0, 0, side, side)), image.crop((side, 0, 2 * side, side))


def grown_image(folder: Path, iteration: int | None) -> Path:
    """The run's image at `iteration`, or at its last scored iteration (arms at equal seconds stop at different ones)."""
    if iteration is not None:
        return folder / f"iter_{iteration:04d}.png"
    found = sorted(folder.glob("iter_*.png"))
    if not found:
        raise SystemExit(f"no iter_NNNN.png in {folder}: is it a bench/learn_faster.py --out folder?")
    return found[-1]


def labelled_grid(rows: list[list[tuple[Image.Image, str]]], scale: int) -> Image.Image:
    """Rows of square tiles on white, each enlarged `scale` times (nearest) with its label underneath."""
    side = next(image for tiles in rows for image, _ in tiles if image is not None).width * scale
    sheet = Image.new("RGB", (side * max(len(tiles) for tiles in rows), (side + LABEL_HEIGHT) * len(rows)), "white")
    draw = ImageDraw.Draw(sheet)
    for r, tiles in enumerate(rows):
        for c, (image, label) in enumerate(tiles):
            x, y = c * side, r * (side + LABEL_HEIGHT)
            if image is not None:
                sheet.paste(image.resize((side, side), Image.NEAREST), (x, y))
            draw.text((x + 3, y + side + 1), label, fill="black")
    return sheet


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arms", nargs="+", required=True, metavar="NAME=FOLDER", help="FOLDER may hold {t}, the texture's name")
    parser.add_argument("--textures", nargs="+", required=True)
    parser.add_argument("--iteration", type=int, help="the iteration to show (default: each run's last)")
    parser.add_argument("--scale", type=int, default=2, help="enlarge each tile this many times (nearest)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    arms = [arm.split("=", 1) for arm in args.arms]
    rows, table = [], []
    for texture in args.textures:
        tiles, cells, shown_target = [], [], None
        for name, pattern in arms:
            folder = Path(pattern.format(t=texture))
            if not folder.exists():  # an arm not run on this texture: a blank tile
                tiles.append((None, f"{name}: not run"))
                cells.append("")
                continue
            target, grown = halves(grown_image(folder, args.iteration))
            shown_target = target
            rated = score(image_to_tensor(grown), image_to_tensor(target))
            tiles.append((grown, f"{name} {rated.combined:.2f} / {rated.shape:.2f}"))
            cells.append(f"{rated.combined:.2f} / {rated.shape:.2f}")
        rows.append([(shown_target, texture), *tiles])
        table.append(f"| {texture} | " + " | ".join(cells) + " |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    labelled_grid(rows, args.scale).save(args.out, quality=85)
    print("| texture | " + " | ".join(f"{name} combined / shape" for name, _ in arms) + " |")
    print("|---|" + "---|" * len(arms))
    print("\n".join(table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
