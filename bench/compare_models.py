"""Target beside two or more models of it, each grown as its card is grown, with combined / shape under each.

    python bench/compare_models.py --target models/pebbles/target.png models/pebbles /tmp/rz/pebbles --out side.png

For deciding, by eye, whether a model trained again replaces a bundled one: every model is grown the verdict's
rollout (`verdict.grow_for_verdict`: 1,024 steps at 128 px from growth seed 0, float32) and scored against the
target at its training size (`quality.score`); a model trained on a smaller target is shown as a crop of that side,
so its cells and the target's pixels are drawn the same size. Prints one line per model.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.contact_sheet import labelled_grid
from nca_gradio.images import load_target, tensor_to_image
from nca_gradio.loading import load_folder
from nca_gradio.model import to_rgb
from nca_gradio.quality import score
from nca_gradio.verdict import grow_for_verdict


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", type=Path, help="model folders")
    parser.add_argument("--target", type=Path, required=True)
    parser.add_argument("--target-size", type=int, default=128, help="the side the models were trained at")
    parser.add_argument("--scale", type=int, default=2, help="enlarge each tile this many times (nearest)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    target = load_target(args.target, args.target_size)
    tiles = [(tensor_to_image(target), args.target.parent.name or args.target.stem)]
    side = target.shape[-1]  # grown tiles are crops of the target's side: one cell per target pixel, as the models were trained
    for folder in args.models:
        grown = to_rgb(grow_for_verdict(load_folder(folder)).state.float()).cpu()
        s = score(grown, target)
        print(f"{folder}: combined {s.combined:.2f}, shape {s.shape:.2f}", flush=True)
        tiles.append((tensor_to_image(grown[..., :side, :side]), f"{folder} {s.combined:.2f} / {s.shape:.2f}"))
    labelled_grid([tiles], args.scale).save(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
