"""Train a bundled model and write its folder: weights, card, target, growth and healing GIFs.

    python models/build.py IMAGE NAME [--iters N] [--preset texture] [--seed 0] [--credit "..."]

The card records the training config, so any model here can be trained again
from its own folder: `python models/build.py models/NAME/target.png NAME`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nca_gradio.hub import model_card  # noqa: E402
from nca_gradio.images import load_target  # noqa: E402
from nca_gradio.quality import model_figures  # noqa: E402
from nca_gradio.render import Damage, grow, regenerate, save_animation  # noqa: E402
from nca_gradio.train import TRAINING_STATE, TrainConfig, Trainer  # noqa: E402

MODELS = Path(__file__).resolve().parent


def existing_credit(folder: Path) -> str | None:
    """The attribution in a folder's current card, so that rebuilding a model keeps it."""
    card = folder / "README.md"
    if not card.exists():
        return None
    _, found, rest = card.read_text().partition("\n## Target image\n")
    return rest.strip() or None if found else None


def build(image: str, name: str, config: TrainConfig, credit: str | None) -> dict:
    folder = MODELS / name
    credit = credit or existing_credit(folder)
    target = load_target(image, config.target_size)
    trainer = Trainer(target, config, log=lambda m: print(m, flush=True))
    started = time.time()
    trainer.train(callback=lambda p: print(f"{name} {p.iteration}/{p.total} loss {p.texture_loss:.4f}", flush=True)
                  if p.iteration % 50 == 0 else None)
    trainer.save(folder, target)
    (folder / TRAINING_STATE).unlink()  # the pool is 50 MB and only needed to resume
    model = trainer.model.eval()
    growth = grow(model, size=128, steps=256, every=4)
    save_animation(growth.frames, folder / "preview.gif", fps=25)
    healing = regenerate(model, Damage("circle", 0.5, 0.5, 0.25), size=128, grow_steps=256, heal_steps=256, every=4)
    save_animation(healing.frames, folder / "regenerate.gif", fps=25)
    figures = model_figures(model, target)
    (folder / "quality.json").write_text(json.dumps(figures.as_dict(), indent=1))
    card = model_card(folder, f"nca-gradio/{name}", rollout=growth)
    if credit:
        card += f"\n## Target image\n\n{credit}\n"
    (folder / "README.md").write_text(card)
    return {"model": name, "minutes": round((time.time() - started) / 60, 1), **figures.as_dict()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image")
    parser.add_argument("name")
    parser.add_argument("--preset", default="texture")
    parser.add_argument("--iters", type=int, default=TrainConfig().iters)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--credit", help="attribution and licence of the target image, for the card (default: the current card's)")
    args = parser.parse_args()
    config = TrainConfig(preset=args.preset, loss="patch", iters=args.iters, seed=args.seed)
    print(json.dumps(build(args.image, args.name, config, args.credit)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
