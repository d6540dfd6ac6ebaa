"""Throughput of `train-many` (Ray, several textures at once) against a plain sequential loop: textures per minute.

    python bench/train_many.py                          # CPU: 2 tasks at once on 2 cores vs one after another
    python bench/train_many.py --device cuda --tasks 8  # GPU: 8 tasks sharing one GPU vs one at a time
    python bench/train_many.py --quick                  # toy sizes: checks that it runs, the figures mean nothing

Both sides train the same textures (the bundled models' targets) with the same recipe through the same
function, `nca_gradio.scale.train_texture` (training, card and score), into fresh folders. The loop runs in
this process with torch's own thread count; train-many runs `--tasks` Ray tasks at once, each with its share
of the cores (and of the GPU). Ray is started and its workers warmed before the clock starts, since a long
run pays for that once. Rounds alternate the two sides; the ratio is the median of the per-round ratios.
Run it on an otherwise idle machine: the issue's bar is 1.6x on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch

from nca_gradio.scale import Texture, import_ray, ray_session, train_many, train_texture
from nca_gradio.train import TrainConfig

CPU_BAR = 1.6  # issue 25: train-many with 2 tasks on 2 cores against the sequential loop


def textures(count: int) -> list[Texture]:
    """The bundled models' targets, repeated when more are asked for (each copy trains into its own folder)."""
    images = sorted(ROOT.glob("models/*/target.png"))
    return [Texture(f"{images[i % len(images)].parent.name}-{i}", str(images[i % len(images)])) for i in range(count)]


def sequential(items: list[Texture], out: Path, config: TrainConfig) -> float:
    """Seconds to train them one after another in this process: the loop a user would write."""
    started = time.perf_counter()
    for texture in items:
        outcome = train_texture(texture.image, out / texture.name, config)
        assert outcome.status == "done", outcome
    return time.perf_counter() - started


def with_ray(items: list[Texture], out: Path, config: TrainConfig, gpus_per_task: float, cpus_per_task: float) -> float:
    """Seconds for train_many to train them, tasks at once as the resources allow."""
    folder = out / "images"
    folder.mkdir(parents=True)
    for texture in items:  # train_many names folders after files: one file per texture
        shutil.copy(texture.image, folder / f"{texture.name}.png")
    started = time.perf_counter()
    outcomes = train_many([folder], out / "zoo", config, gpus_per_task=gpus_per_task, cpus_per_task=cpus_per_task, progress=False)
    seconds = time.perf_counter() - started
    assert all(o.status == "done" for o in outcomes), [o for o in outcomes if o.status != "done"]
    return seconds


def warm(ray, tasks: int, cpus_per_task: float, gpus_per_task: float) -> None:
    """Start `tasks` workers and import the library (and CUDA) in each, so the clock times training, not start-up."""

    def load() -> int:
        import nca_gradio.scale  # noqa: F401

        if torch.cuda.is_available() and gpus_per_task:
            torch.zeros(1, device="cuda")
        time.sleep(2)  # hold the worker so that each warm-up lands on its own
        return os.getpid()

    remote = ray.remote(num_cpus=cpus_per_task, num_gpus=gpus_per_task)(load)
    ray.get([remote.remote() for _ in range(tasks)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--tasks", type=int, default=2, help="tasks at once (default 2; try 8 on a GPU)")
    parser.add_argument("--per-task", type=int, default=2, help="textures per task slot: the run trains tasks x this")
    parser.add_argument("--iters", type=int, default=60)
    parser.add_argument("--preset", default="texture")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=1, help="alternating rounds of loop and train-many")
    parser.add_argument("--loop-threads", type=int, help="torch threads for the loop (default: torch's choice, all cores)")
    parser.add_argument("--quick", action="store_true", help="toy sizes: checks that the script runs")
    args = parser.parse_args(argv)
    if args.loop_threads:
        torch.set_num_threads(args.loop_threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA GPU here")
    if args.quick:
        args.iters, args.preset, args.size, args.per_task = 3, "fast", 32, 1
    import_ray()
    cores = os.cpu_count() or 1
    cpus_per_task = max(1, cores // args.tasks)
    gpus_per_task = 1 / args.tasks if args.device == "cuda" else 0.0
    config = TrainConfig(preset=args.preset, loss="patch", iters=args.iters, size=args.size, device=args.device)
    items = textures(args.tasks * args.per_task)
    resources = {"num_cpus": cpus_per_task * args.tasks} | ({"num_gpus": 1} if args.device == "cuda" else {})
    ratios, loop_rates, ray_rates = [], [], []
    with ray_session(None, **resources) as ray:
        warm(ray, args.tasks, cpus_per_task, gpus_per_task)
        for round_ in range(args.rounds):
            with tempfile.TemporaryDirectory(prefix="bench-train-many-") as scratch:
                loop_s = sequential(items, Path(scratch) / "loop", config)
                ray_s = with_ray(items, Path(scratch) / "ray", config, gpus_per_task, cpus_per_task)
            loop_rates.append(len(items) / loop_s * 60)
            ray_rates.append(len(items) / ray_s * 60)
            ratios.append(loop_s / ray_s)
            print(f"round {round_ + 1}: loop {loop_s:.1f} s, train-many {ray_s:.1f} s, ratio {loop_s / ray_s:.2f}x",
                  file=sys.stderr)
    ratio = statistics.median(ratios)
    where = f"{args.tasks} tasks sharing one GPU" if args.device == "cuda" else f"{args.tasks} tasks on {cores} cores"
    command = "python bench/train_many.py " + " ".join(sys.argv[1:] if argv is None else argv)
    print(f"`{command.strip()}`{' (QUICK: toy sizes)' if args.quick else ''}: {len(items)} textures, {args.preset} preset, "
          f"{args.size} px, {args.iters} iterations, torch threads in the loop {torch.get_num_threads()}\n")
    print("| run | textures/minute | ratio |\n|---|---|---|")
    print(f"| sequential loop (baseline) | {statistics.median(loop_rates):.2f} | 1.00x |")
    print(f"| train-many, {where} | {statistics.median(ray_rates):.2f} | {ratio:.2f}x |")
    if args.device == "cpu" and args.tasks == 2 and cores == 2 and not args.quick:
        print(f"\nissue 25 bar (2 cores): {CPU_BAR}x: {'MET' if ratio >= CPU_BAR else 'NOT MET'}")
    print(json.dumps({"device": args.device, "tasks": args.tasks, "textures": len(items), "ratio": round(ratio, 3),
                      "loop_per_minute": round(statistics.median(loop_rates), 3),
                      "train_many_per_minute": round(statistics.median(ray_rates), 3)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
