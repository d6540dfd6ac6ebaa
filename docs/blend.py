"""Write docs/blend.png, the README's picture of the live page's blend: two bundled rules, mixed left to right.

    python docs/blend.py [--a autumn_leaves] [--b starry_sky] [--steps 512]    # after pip install -e . (or PYTHONPATH=.)

The mask is a ramp from 0 (all rule A) on the left to 1 (all rule B) on the right, as the page's B brush paints with
the "A ← blend → B" slider at each value: `graft.Graft` grown by `render.grow`, the rule the page runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from PIL import Image, ImageDraw, ImageFont

from nca_gradio.graft import Graft
from nca_gradio.loading import load_folder
from nca_gradio.render import grow

ROOT = Path(__file__).resolve().parents[1]
WIDTH, HEIGHT = 768, 192  # cells: a strip wide enough to show the blend's steps
LABEL = 30
TICKS = (0, 0.25, 0.5, 0.75, 1)


def blended(a: str, b: str, steps: int) -> Image.Image:
    """Rule A grown into rule B by a left-to-right ramp of a mask (seed 0)."""
    ramp = torch.linspace(0, 1, WIDTH).expand(HEIGHT, WIDTH).contiguous()
    graft = Graft(load_folder(ROOT / "models" / a), load_folder(ROOT / "models" / b), ramp)
    return Image.fromarray(grow(graft, size=WIDTH, height=HEIGHT, steps=steps, every=steps).final)


def labelled(strip: Image.Image, a: str, b: str) -> Image.Image:
    """The strip on white with the blend's value under it: A's name at 0, B's at 1."""
    sheet = Image.new("RGB", (strip.width, strip.height + LABEL), "white")
    sheet.paste(strip, (0, 0))
    draw, font = ImageDraw.Draw(sheet), ImageFont.load_default(size=15)
    for value in TICKS:
        x = round(value * (strip.width - 1))
        text = f"{a} (A)" if value == 0 else f"{b} (B)" if value == 1 else f"blend {value:g}"
        anchor = "lm" if value == 0 else "rm" if value == 1 else "mm"
        draw.line([(x, strip.height), (x, strip.height + 5)], fill="black", width=2)
        draw.text((x + (4 if value == 0 else -4 if value == 1 else 0), strip.height + LABEL // 2 + 2), text, fill="black",
                  font=font, anchor=anchor)
    return sheet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--a", default="autumn_leaves", help="bundled model at the left (blend 0)")
    parser.add_argument("--b", default="starry_sky", help="bundled model at the right (blend 1): the same shape as A")
    parser.add_argument("--steps", type=int, default=512)
    parser.add_argument("-o", "--output", type=Path, default=ROOT / "docs" / "blend.png")
    args = parser.parse_args()
    labelled(blended(args.a, args.b, args.steps), args.a, args.b).save(args.output, optimize=True)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
