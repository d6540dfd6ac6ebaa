"""Research: one rule, two textures, chosen by a genome channel in the seed (Catrina et al. 2024), against one rule each.

The last state channel is the genome: 0 everywhere grows texture A (so A's seed is the empty grid), 1 grows B. The
rule never changes it (its row of w2 stays zero: the gradient there is zeroed), so it is read through perception
only. Half the pool's slots carry genome 1; after every iteration the pool's genome is stamped again, because
re-injection empties a slot. Each sample's texture loss is its own genome's target's. Everything else is the
default CPU recipe of `nca train` (the Trainer itself, with its loss and schedule).

    python bench/multi_texture.py A.png B.png -o OUT [--iters 500] [--single A|B]

`--single A` trains A alone under the same recipe and iterations (the baseline); without it, the two-texture rule.
Every run ends by growing 128 px for 1,024 steps (genome 0, 1 and, for the two-texture rule, 0.5) in float32,
scoring against the 128 px targets (`quality.score`, 1.0 = as close as the target to itself) and writing
OUT/grown.png (genome 0 | 0.5 | 1) and OUT/scores.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from nca_gradio.images import load_target
from nca_gradio.losses import build_loss
from nca_gradio.model import to_rgb
from nca_gradio.model_folder import save_model
from nca_gradio.quality import score
from nca_gradio.render import run
from nca_gradio.train import TrainConfig, Trainer

SIZE, STEPS = 128, 1024


def grown(model, genome: float | None) -> np.ndarray:
    """A 128 px texture grown from the empty grid with the genome channel at `genome` (None: a one-texture rule)."""
    state = model.empty_grid(1, SIZE)
    if genome is not None:
        state[:, -1] = genome
    return run(model, state, STEPS, every=STEPS, precision="float32", keep_frames=False).final


def as_image(frame: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(frame).permute(2, 0, 1)[None].float() / 255.0


def two_texture_trainer(targets: list[torch.Tensor], config: TrainConfig) -> Trainer:
    """The Trainer of A, taught B as well: per-sample losses by genome, a genome the rule cannot write."""
    trainer = Trainer(targets[0], config, log=lambda m: None)
    parts = trainer.parts
    loss_b, _ = build_loss(trainer.loss_name, targets[1].to(trainer.device), match_weight=config.match_weight)
    loss_a = parts.loss_fn
    genome = parts.model.channels - 1

    def losses(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        from nca_gradio.losses import overflow_loss

        rgb = to_rgb(x.float(), clamp=False)
        is_b = x[:, genome].mean(dim=(1, 2)) > 0.5
        texture = torch.where(is_b, loss_b(rgb), loss_a(rgb)).mean()
        overflow = overflow_loss(x.float()) * parts.overflow_weight
        return texture + overflow, texture, overflow

    parts.losses = losses
    keep = torch.ones_like(parts.model.w2.weight)
    keep[genome] = 0.0
    parts.model.w2.weight.register_hook(lambda grad: grad * keep)
    return trainer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a")
    parser.add_argument("b")
    parser.add_argument("-o", "--output", required=True)
    parser.add_argument("--iters", type=int, default=500)
    parser.add_argument("--single", choices=["A", "B"])
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    targets = [load_target(path, SIZE) for path in (args.a, args.b)]
    config = TrainConfig(device="cpu", iters=args.iters)
    if args.single:
        trainer = Trainer(targets["AB".index(args.single)], config, log=lambda m: None)
        slots = None
    else:
        trainer = two_texture_trainer(targets, config)
        slots = (torch.arange(config.pool_size) % 2).float()  # the genome of each pool slot
    start = time.time()
    while trainer.iteration < args.iters:
        if slots is not None:
            trainer.pool[:, -1] = slots.view(-1, 1, 1)
        values = trainer.train_step()
        if trainer.iteration % 50 == 0:
            print(f"{trainer.iteration} it, {time.time() - start:.0f} s, texture {values['texture']:.4g}", flush=True)
    model = trainer.model.eval()
    save_model(model, out)
    genomes = [None] if args.single else [0.0, 0.5, 1.0]
    frames = [grown(model, g) for g in genomes]
    scores = {}
    if args.single:
        scores[args.single] = score(as_image(frames[0]), targets["AB".index(args.single)]).combined
    else:
        scores["A (genome 0)"] = score(as_image(frames[0]), targets[0]).combined
        scores["B (genome 1)"] = score(as_image(frames[2]), targets[1]).combined
        scores["genome 0.5 vs A"] = score(as_image(frames[1]), targets[0]).combined
        scores["genome 0.5 vs B"] = score(as_image(frames[1]), targets[1]).combined
    scores["seconds"] = time.time() - start
    (out / "scores.json").write_text(json.dumps(scores, indent=1))
    Image.fromarray(np.concatenate(frames, axis=1)).save(out / "grown.png")
    print(json.dumps(scores))


if __name__ == "__main__":
    main()
