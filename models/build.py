"""Train a bundled model and write its folder: weights, card, target, growth and healing GIFs.

    python models/build.py IMAGE NAME [--iters N] [--preset texture] [--seed 0] [--credit "..."]
    python models/build.py --refresh NAME      # GIFs, quality.json and card again, no training
    python models/build.py --card NAME         # only the card (after a rename or a change to cards)

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

from nca_gradio.hub import model_card, read_training_log  # noqa: E402
from nca_gradio.images import load_target  # noqa: E402
from nca_gradio.loading import load_folder  # noqa: E402
from nca_gradio.model import PERCEPTIONS, PRECISIONS  # noqa: E402
from nca_gradio.quality import MIN_TARGET_SIDE, QUALITY_FILE, model_figures  # noqa: E402
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
    """Train a model on `image` and write its whole folder."""
    folder = MODELS / name
    credit = credit or existing_credit(folder)
    target = load_target(image, config.target_size)
    trainer = Trainer(target, config, log=lambda m: print(m, flush=True))
    started = time.time()
    trainer.train(callback=lambda p: print(f"{name} {p.iteration}/{p.total} loss {p.texture_loss:.4f}", flush=True)
                  if p.iteration % 50 == 0 else None)
    trainer.save(folder, target)
    (folder / TRAINING_STATE).unlink()  # the pool is 50 MB and only needed to resume
    figures = finish(folder, trainer.model.eval(), target, credit)
    return {"model": name, "minutes": round((time.time() - started) / 60, 1), **figures}


def refresh(name: str) -> dict:
    """Rewrite a trained folder's GIFs, quality.json and card (after a change to them), without training."""
    folder = MODELS / name
    target = load_target(folder / "target.png", TrainConfig.from_dict(read_training_log(folder)["config"]).target_size)
    return {"model": name, **finish(folder, load_folder(folder), target, existing_credit(folder))}


def finish(folder: Path, model, target, credit: str | None) -> dict:
    """Growth and healing GIFs, quality figures and the card with the image's credit."""
    # 512 steps: some textures settle late (brick's courses form between steps 500 and 1000)
    growth = grow(model, size=128, steps=512, every=8)
    save_animation(growth.frames, folder / "preview.gif", fps=25)
    healing = regenerate(model, Damage("circle", 0.5, 0.5, 0.25), size=128, grow_steps=256, heal_steps=256, every=4)
    save_animation(healing.frames, folder / "regenerate.gif", fps=25)
    figures = model_figures(model, target).as_dict()
    (folder / QUALITY_FILE).write_text(json.dumps(figures, indent=1))
    write_bundled_card(folder, credit)
    return figures


def write_bundled_card(folder: Path, credit: str | None) -> None:
    """The Hub card (scored on its own 200-step growth, as a push scores it) with the image's credit."""
    card = model_card(folder, f"nca-gradio/{folder.name}")
    if credit:
        card += f"\n## Target image\n\n{credit}\n"
    (folder / "README.md").write_text(card)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image", nargs="?", help="the texture to train on (not with --refresh)")
    parser.add_argument("name")
    parser.add_argument("--preset", default="texture")
    parser.add_argument("--iters", type=int, default=TrainConfig().iters)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--target-size", type=int, default=TrainConfig().target_size,
                        help="side the image is resized to: smaller makes its objects smaller, within the NCA's reach")
    parser.add_argument("--pool-size", type=int, default=TrainConfig().pool_size)
    parser.add_argument("--perception", choices=list(PERCEPTIONS), default=TrainConfig().perception, help="isotropic: for round things (see nca train --help)")
    parser.add_argument("--match", type=float, default=TrainConfig().match_weight, help="patch matching weight (see nca train --help)")
    parser.add_argument("--damage-every", type=int, default=TrainConfig().damage_every, metavar="N", help="practise healing (see nca train --help)")
    parser.add_argument("--precision", choices=PRECISIONS, default=TrainConfig().precision, help="the rollout's arithmetic (see nca train --help)")
    parser.add_argument("--credit", help="attribution and licence of the target image, for the card (default: the current card's)")
    parser.add_argument("--refresh", action="store_true", help="rewrite the GIFs, quality.json and card of a trained folder")
    parser.add_argument("--card", action="store_true", help="rewrite only the card of a trained folder")
    args = parser.parse_args()
    if args.card:
        write_bundled_card(MODELS / args.name, existing_credit(MODELS / args.name))
        return 0
    if args.refresh:
        print(json.dumps(refresh(args.name)), flush=True)
        return 0
    if args.image is None:
        parser.error("IMAGE is needed to train (or use --refresh)")
    if args.target_size < MIN_TARGET_SIDE:  # refused now, not after a quarter of an hour of training
        parser.error(f"--target-size must be at least {MIN_TARGET_SIDE}: a bundled model is scored against its target")
    config = TrainConfig(preset=args.preset, loss="patch", iters=args.iters, seed=args.seed,
                         target_size=args.target_size, pool_size=args.pool_size, perception=args.perception,
                         match_weight=args.match, damage_every=args.damage_every, precision=args.precision)
    print(json.dumps(build(args.image, args.name, config, args.credit)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
