"""Quality of every bundled model: combined score at 1024 and 4096 steps, and 256 steps after damage.

Run: python bench/quality.py [--models models] [--size 128]
The shape column is the shape ratio at 1,024 steps (`nca_gradio.shapes`), reported beside the combined score.
Scores are ratios against the target's own floor (1.0 = as close as the target
is to itself); the bar for a bundled model is <= 2.0 at 1024 and 4096 steps,
and a heal ratio <= 1.25.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nca_gradio.images import image_to_tensor, load_image
from nca_gradio.loading import load_folder
from nca_gradio.quality import model_figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="models", help="folder of model folders")
    parser.add_argument("--size", type=int, default=128, help="canvas side to grow and score")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = []
    for folder in sorted(p for p in Path(args.models).iterdir() if (p / "config.json").exists()):
        model = load_folder(folder)
        target = image_to_tensor(load_image(folder / "target.png"))
        figures = model_figures(model, target, size=args.size)
        rows.append({"model": folder.name, "parameters": model.num_parameters, **figures.as_dict()})
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(f"{'model':<18} {'params':>6} {'@1024':>7} {'@4096':>7} {'healed':>7} {'heal ratio':>10} {'shape':>6}")
    for r in rows:
        print(f"{r['model']:<18} {r['parameters']:>6} {r['combined_1024']:>7.3f} {r['combined_4096']:>7.3f} "
              f"{r['combined_healed']:>7.3f} {r['heal_ratio']:>10.3f} {r['shape_1024']:>6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
