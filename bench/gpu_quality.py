"""The GPU recipe on several textures: it/s, seconds and score for each, and one contact sheet.

    python bench/gpu_quality.py [TEXTURES...] [--out DIR] [--time 60]

Textures default to six bundled models' targets (models/NAME/target.png); pass photos
no recipe was tuned on for a fairer look (../shared/textures/*.png where it exists).
Each is trained with `TrainConfig.for_device("auto")` (on a GPU: the GPU recipe with
its time budget), each iteration replayed as one CUDA graph (the Trainer's default on CUDA), grown on a 128 px canvas and scored
(`quality.score`: 1.0 is the target's own floor) at 1,024 and 4,096 steps. The sheet
has one row per texture: target, grown for 1,024 steps, grown for 4,096 steps.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nca_gradio.images import load_target, tensor_to_image
from nca_gradio.model import to_rgb
from nca_gradio.quality import score
from nca_gradio.render import run
from nca_gradio.train import TrainConfig, Trainer

SIDE = 128


DEFAULT_TEXTURES = ("autumn_leaves", "brick_gray", "coffee_beans", "hubble_dots", "pebbles", "starry_sky")  # six fit 8 minutes


def textures(paths: list[Path]) -> list[Path]:
    if paths:
        return paths
    models = Path(__file__).resolve().parents[1] / "models"
    return [models / name / "target.png" for name in DEFAULT_TEXTURES]


def trial(path: Path, config: TrainConfig) -> tuple[dict, torch.Tensor]:
    target = load_target(path, config.target_size)
    trainer = Trainer(target, config, log=lambda message: print(f"  {message}", file=sys.stderr))
    started = time.perf_counter()
    result = trainer.train()
    seconds = time.perf_counter() - started
    model = trainer.model.eval()
    grown = run(model, model.empty_grid(1, SIDE), 1024, every=1024, seed=0).state
    old = run(model, grown, 3072, every=3072, seed=1).state
    images = [to_rgb(s.float()).cpu() for s in (grown, old)]
    small_target = F.interpolate(target.cpu(), size=SIDE, mode="area")
    name = path.parent.name if path.name == "target.png" else path.stem
    row = {"texture": name, "iterations": result.iteration, "seconds": seconds, "it_s": result.iteration / max(result.seconds, 1e-9),
           "score_1024": score(images[0], target.cpu()).combined, "score_4096": score(images[1], target.cpu()).combined,
           "path": trainer.path}
    return row, torch.cat([small_target, *images], dim=-1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("textures", nargs="*", type=Path)
    parser.add_argument("--out", type=Path, default=Path("/tmp"), help="folder for contact_sheet.png")
    parser.add_argument("--time", type=float, help="seconds per texture (default: the device recipe's budget)")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    chosen = {"time_budget": args.time} if args.time else {}
    config = TrainConfig.for_device(args.device, **chosen)
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    print(f"device {device}, torch {torch.__version__}; recipe: {config.iters} iterations at most, {config.time_budget:g} s, "
          f"batch {config.batch}, pool {config.pool_size}, match {config.match_weight}, loss {config.loss}")
    print(f"| {'texture':<16} | {'iterations':>10} | {'seconds':>7} | {'it/s':>6} | {'score @1024':>11} | {'score @4096':>11} |")
    print(f"|{'-' * 18}|{'-' * 12}|{'-' * 9}|{'-' * 8}|{'-' * 13}|{'-' * 13}|")
    rows, strips = [], []
    for path in textures(args.textures):
        row, strip = trial(path, config)
        rows.append(row)
        strips.append(strip)
        print(f"| {row['texture']:<16} | {row['iterations']:>10} | {row['seconds']:>7.1f} | {row['it_s']:>6.1f} | "
              f"{row['score_1024']:>11.2f} | {row['score_4096']:>11.2f} |", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    tensor_to_image(torch.cat(strips, dim=-2)[0]).save(args.out / "contact_sheet.png")
    print(f"median score @1024 {statistics.median(r['score_1024'] for r in rows):.2f}, "
          f"median it/s {statistics.median(r['it_s'] for r in rows):.1f}; sheet: {args.out / 'contact_sheet.png'} "
          f"(rows: target, 1,024 steps, 4,096 steps); iterations ran as: {', '.join(sorted({r['path'] for r in rows}))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
