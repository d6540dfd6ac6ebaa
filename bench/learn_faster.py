"""Learn faster on the CPU: does a warm start (a bundled model's weights) reach the default recipe's quality sooner?

    python bench/learn_faster.py --rank --target /work/shared/textures/citrus_slices.png     # bundled models, nearest first
    python bench/learn_faster.py --target T.png --out /tmp/lf/baseline                        # the default recipe, 500 iterations
    python bench/learn_faster.py --target T.png --start-from models/pebbles --iters 170 --score-at 50 100 170 --out /tmp/lf/pebbles
    python bench/learn_faster.py --table /tmp/lf/baseline /tmp/lf/pebbles                     # one table of the runs

Each run trains `TrainConfig.for_device("cpu")` (the recipe a CPU user gets: texture preset,
patch loss, lr 2e-3 decayed x0.3 at 0.5 and 0.8 of `--iters`) on the target, from the
identity (the default) or from a model's rule (`--start-from`: the path `nca train --from`
takes, `TrainConfig.start_from`, so the run keeps that model's architecture). At each
`--score-at` iteration a copy of the model grows a 128 px texture for 200 steps in
float32 (the model card's preview) from each `--grow-seeds` seed, and
`quality.score(...).combined` against the 128 px target is averaged over the seeds
(1.0: as close as the target is to itself; lower is better). The run writes
`results.json` and, per scored iteration, `iter_NNNN.png` (target | grown from each seed).
`--rank` scores each bundled model's own target against the new one, to pick the
nearest and farthest start.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.loss_terms import Pooled, ResearchPatchLoss
from bench.multiscale_rule import MultiScaleNCA, grow_reference, use_multiscale
from bench.ps_term import WithPortillaSimoncelli
from nca_gradio.images import load_target, tensor_to_image
from nca_gradio.loading import load_start
from nca_gradio.model import to_rgb
from nca_gradio.model_folder import read_config
from nca_gradio.quality import score
from nca_gradio.render import grow
from nca_gradio.train import Status, TrainConfig, Trainer

ROOT = Path(__file__).resolve().parents[1]
GROW_SIZE, GROW_STEPS = 128, 200  # the card's preview (card.PREVIEW_SIZE, card.PREVIEW_STEPS)


def measure(model, target: torch.Tensor, seeds: list[int], steps: int = GROW_STEPS) -> tuple[float, float, list[torch.Tensor]]:
    """Mean combined score and shape ratio over growth seeds, and the grown images (a copy of the model is grown)."""
    twin = copy.deepcopy(model).cpu()
    rng_state = torch.get_rng_state()
    values, shapes, images = [], [], []
    with torch.no_grad():
        for seed in seeds:
            if isinstance(twin, MultiScaleNCA):  # the library's fast step folds only a 3x3 perception
                state = grow_reference(twin, GROW_SIZE, steps, seed)
            else:
                state = grow(twin, size=GROW_SIZE, steps=steps, every=steps, seed=seed, precision="float32",
                             keep_frames=False).state
            rgb = to_rgb(state.float()).cpu()
            rated = score(rgb, target)
            values.append(rated.combined)
            shapes.append(rated.shape)
            images.append(rgb)
    torch.set_rng_state(rng_state)
    return sum(values) / len(values), sum(shapes) / len(shapes), images


def rank(target: torch.Tensor) -> list[tuple[str, float]]:
    """Bundled models with the texture preset's size, by how close their own target is to this one (lower: nearer)."""
    rows = []
    for folder in sorted(p for p in (ROOT / "models").iterdir() if (p / "config.json").exists()):
        arch = read_config(folder / "config.json")
        if (arch.channels, arch.hidden) != (TrainConfig().architecture.channels, TrainConfig().architecture.hidden):
            continue
        rows.append((folder.name, score(load_target(folder / "target.png", target.shape[-1]), target).combined))
    return sorted(rows, key=lambda r: r[1])


def train_run(args: argparse.Namespace, target: torch.Tensor) -> dict:
    chosen = {"iters": args.iters, "seed": args.seed}
    overrides = {"lr": args.lr, "batch": args.batch, "pool_size": args.pool_size,
                 "lr_decay_at": tuple(args.decay_at) if args.decay_at is not None else None}
    chosen |= {name: value for name, value in overrides.items() if value is not None}  # unset: the recipe's own
    start = None
    if args.start_from is not None:
        start = load_start(str(args.start_from))
        chosen["start_from"] = str(args.start_from)
    config = TrainConfig.for_device("cpu", start.config if start else None, **chosen)
    trainer = Trainer(target, config, log=lambda _: None, start=start)
    if args.loss_kw:
        trainer.parts.loss_fn = ResearchPatchLoss(trainer.target, **args.loss_kw)
    patch_loss = trainer.parts.loss_fn  # the one with the spectrum term, before any wrapper: --spectrum-off-at sets its weight
    if args.ps_weight:
        trainer.parts.loss_fn = WithPortillaSimoncelli(trainer.parts.loss_fn, trainer.target, config.size, args.ps_weight)
    full_loss = trainer.parts.loss_fn
    if args.coarse_until:  # the first iterations see the image pooled, so they can ask only for the objects' layout
        coarse_target = F.avg_pool2d(trainer.target, args.coarse_factor)
        trainer.parts.loss_fn = Pooled(ResearchPatchLoss(coarse_target, **(args.loss_kw or {})), args.coarse_factor)
    if args.perception_scales:
        use_multiscale(trainer, tuple(args.perception_scales), args.perception_concat)
    score_at = sorted({i for i in args.score_at if i <= config.iters})
    rows = []
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    def record(iteration: int) -> None:
        value, shape, images = measure(trainer.model, target, args.grow_seeds, args.grow_steps)
        rows.append({"iteration": iteration, "score": value, "shape": shape, "train_seconds": round(trainer.seconds, 1)})
        shown = target.repeat(1, 1, *(g // t for g, t in zip(images[0].shape[-2:], target.shape[-2:])))  # tiled to the growth's size
        tensor_to_image(torch.cat([shown, *images], dim=-1)[0]).save(out / f"iter_{iteration:04d}.png")
        print(f"{iteration:>6} {value:>7.3f} {shape:>7.3f} {trainer.seconds:>8.0f}", flush=True)

    print(f"run: start {args.start_from or 'identity'}, iters {config.iters}, lr {config.lr}, decay at {config.lr_decay_at}, "
          f"perception {config.perception} at scales {args.perception_scales or [0]}{' side by side' if args.perception_concat else ''}, seed {config.seed}, loss terms {args.loss_kw or 'the library patch loss'}"
          f"{f' + Portilla-Simoncelli x{args.ps_weight:g}' if args.ps_weight else ''}"
          f"{f', spectrum term off after {args.spectrum_off_at}' if args.spectrum_off_at else ''}"
          f"{f', the image pooled {args.coarse_factor}x until {args.coarse_until}' if args.coarse_until else ''}")
    print(f"{'iter':>6} {'score':>7} {'shape':>7} {'seconds':>8}", flush=True)
    if 0 in score_at:
        record(0)

    def after(status: Status) -> None:
        if status.iteration == args.spectrum_off_at:
            patch_loss.spectrum_weight = 0.0  # read at each call: the grain first, then the objects
        if status.iteration == args.coarse_until:
            trainer.parts.loss_fn = full_loss  # read at each iteration: now the detail
        if status.iteration in score_at:
            record(status.iteration)

    trainer.train(callback=after, preview_every=10**9)
    result = {"target": str(args.target), "start_from": str(args.start_from) if args.start_from else None, "loss_kw": args.loss_kw,
              "ps_weight": args.ps_weight, "spectrum_off_at": args.spectrum_off_at,
              "coarse_until": args.coarse_until, "coarse_factor": args.coarse_factor, "perception_scales": args.perception_scales, "perception_concat": args.perception_concat,
              "config": {k: v for k, v in config.to_dict().items() if k != "lr_decay_at"} | {"lr_decay_at": list(config.lr_decay_at)},
              "grow_seeds": args.grow_seeds, "rows": rows, "wall_seconds": round(time.perf_counter() - started, 1)}
    (out / "results.json").write_text(json.dumps(result, indent=2))
    return result


def table(folders: list[Path]) -> None:
    runs = [json.loads((f / "results.json").read_text()) for f in folders]
    iterations = sorted({r["iteration"] for run in runs for r in run["rows"]})
    names = [Path(run["start_from"]).name if run["start_from"] else "identity" for run in runs]
    names = [f"{n} ({run['config']['iters']} it, seed {run['config']['seed']})" for n, run in zip(names, runs)]
    print("| iteration | " + " | ".join(names) + " |")
    print("|---:|" + "---:|" * len(runs))
    for it in iterations:
        cells = []
        for run in runs:
            found = [r["score"] for r in run["rows"] if r["iteration"] == it]
            shapes = [r.get("shape") for r in run["rows"] if r["iteration"] == it]
            shape = f" (shape {shapes[0]:.2f})" if shapes and shapes[0] is not None else ""
            cells.append(f"{found[0]:.2f}{shape}" if found else "")
        print(f"| {it} | " + " | ".join(cells) + " |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", type=Path, help="texture image (not one the bundled models were trained on)")
    parser.add_argument("--start-from", type=Path, help="model folder to start from, as nca train --from (default: the identity)")
    parser.add_argument("--iters", type=int, default=TrainConfig.iters, help="planned iterations (the lr schedule fits them)")
    parser.add_argument("--seed", type=int, default=0, help="training seed (pool sampling, masks, loss directions)")
    parser.add_argument("--lr", type=float, help="override the recipe's lr")
    parser.add_argument("--batch", type=int, help="override the recipe's batch (the GPU recipe's is 8)")
    parser.add_argument("--pool-size", type=int, help="override the recipe's pool of grids (the GPU recipe's is 256)")
    parser.add_argument("--decay-at", type=float, nargs="+", help="override the recipe's lr decay fractions")
    parser.add_argument("--score-at", type=int, nargs="+", default=[50, 100, 170, 250, 500], help="iterations to score at")
    parser.add_argument("--grow-seeds", type=int, nargs="+", default=[0, 1], help="growth seeds the score is averaged over")
    parser.add_argument("--loss-kw", type=json.loads, help='train with ResearchPatchLoss(**JSON), e.g. {"spectrum_angles": 8}')
    parser.add_argument("--spectrum-off-at", type=int,
                        help="the spectrum term's weight drops to 0 after this iteration (it gives the grain early; off, objects may form)")
    parser.add_argument("--coarse-until", type=int,
                        help="until this iteration the loss sees the image average-pooled (--coarse-factor): layout first, detail after")
    parser.add_argument("--coarse-factor", type=int, default=2, help="the pooling of --coarse-until")
    parser.add_argument("--ps-weight", type=float, default=0.0,
                        help="add bench/ps_term.py's Portilla-Simoncelli statistics (needs plenoptic) at this weight")
    parser.add_argument("--perception-scales", type=int, nargs="+",
                        help="train bench/multiscale_rule.py's rule, perceiving at these scales (0: the grid, 1: half, 2: a quarter)")
    parser.add_argument("--perception-concat", action="store_true",
                        help="with --perception-scales: the scales side by side, each with weights of its own, not averaged")
    parser.add_argument("--target-size", type=int, default=TrainConfig.target_size,
                        help="side the image is resized to (smaller: its objects fewer cells across)")
    parser.add_argument("--grow-steps", type=int, default=GROW_STEPS, help="steps each scored growth runs (default: the card's preview)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--out", type=Path, default=Path("/tmp/learn_faster/run"), help="folder for results.json and PNGs")
    parser.add_argument("--rank", action="store_true", help="only list bundled models, nearest texture first")
    parser.add_argument("--table", type=Path, nargs="+", help="only print one table of these run folders")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.table:
        table(args.table)
        return 0
    if args.target is None:
        parser.error("--target is required")
    if args.coarse_until and (args.ps_weight or (args.spectrum_off_at is not None and args.spectrum_off_at < args.coarse_until)):
        parser.error("--coarse-until's pooled loss has no Portilla-Simoncelli term and keeps its spectrum term: "
                     "leave out --ps-weight, and put --spectrum-off-at after --coarse-until")
    target = load_target(args.target, args.target_size)
    if args.rank:
        for name, value in rank(target):
            print(f"{name:>14} {value:>7.2f}")
        return 0
    train_run(args, target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
