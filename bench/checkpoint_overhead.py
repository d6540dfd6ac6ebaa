"""What checkpointing while training costs: one save against the training it interrupts, timed in the same run.

    python bench/checkpoint_overhead.py                      # the CPU default recipe (texture preset, pool 64 at 64 px)
    python bench/checkpoint_overhead.py --pool-size 256      # the GPU recipe's larger pool, on this machine

It trains `--iters` iterations of the default recipe as the baseline, then times `--saves` checkpoints
(`Trainer.save`: the one-file checkpoint, the model, training.json and the target, each flushed to disk)
and prints a save's cost as a share of `run.CHECKPOINT_SECONDS` of training, the cadence every run keeps.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nca_gradio.images import load_target
from nca_gradio.run import CHECKPOINT_SECONDS
from nca_gradio.train import TrainConfig, Trainer

TARGET = Path(__file__).resolve().parents[1] / "models" / "pebbles" / "target.png"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=5, help="training iterations timed as the baseline")
    parser.add_argument("--saves", type=int, default=5)
    parser.add_argument("--pool-size", type=int, default=TrainConfig.pool_size)
    args = parser.parse_args()
    config = TrainConfig(device="cpu", pool_size=args.pool_size, iters=10_000)
    trainer = Trainer(load_target(TARGET, config.target_size), config, log=lambda message: None)
    trainer.train(max_seconds=0.0)  # one iteration: Adam gets its state, so a save writes all of it
    started = time.perf_counter()
    trainer.train(should_stop=lambda: trainer.iteration > args.iters)
    per_iteration = (time.perf_counter() - started) / args.iters
    saves = []
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(args.saves):
            started = time.perf_counter()
            trainer.save(folder, trainer.target)
            saves.append(time.perf_counter() - started)
        size = sum(p.stat().st_size for p in Path(folder).iterdir())
    save = statistics.median(saves)
    print(f"training: {per_iteration:.2f} s an iteration (baseline, same run); checkpoint: {size / 1e6:.1f} MB on disk")
    print(f"one save: {save:.3f} s median of {args.saves} = {save / per_iteration:.2f}x an iteration")
    print(f"overhead at one save every {CHECKPOINT_SECONDS:g} s of training: {100 * save / (CHECKPOINT_SECONDS + save):.2f}%")


if __name__ == "__main__":
    main()
