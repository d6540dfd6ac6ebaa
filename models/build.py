"""Train bundled models and write their folders: weights, card, target, growth and healing GIFs.

    python models/build.py IMAGE NAME [--iters N] [--preset texture] [--seed 0] [--credit "..."]
    python models/build.py --again NAME [NAME ...]   # train again from their own targets and recipes, at once
    python models/build.py --again all               # every bundled model (needs the scale extra: Ray)
    python models/build.py --many NEW.json           # several new models at once: [{"name", "image", "credit"}, ...]
    python models/build.py --refresh NAME      # GIFs, quality.json and card again, no training
    python models/build.py --refresh NAME --credit "..."   # also for a model trained by `nca train` and copied in
    python models/build.py --card NAME         # only the card and live page (after a change to cards or the runtime)
    python models/build.py --adopt OUT NAME --credit "..."   # a model trained by `nca train -o OUT` made a bundled one
    python models/build.py --table             # the README's table of bundled models, from notes.json and quality.json

Training goes through `nca_gradio.scale.train_many` (one Ray task per model, a
core each by default) into build/models/NAME, which keeps checkpoints: an
interrupted build, run again, continues. The model is then copied into
models/NAME and given its GIFs, quality.json and card. The card records the
training config, so any model here can be trained again from its own folder.
What each model grows well and badly, as seen by eye, is written once in
models/notes.json; the cards and the README's table both take it from there.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nca_gradio.atomic import write_bytes
from nca_gradio.card import grow_preview, model_card
from nca_gradio.images import load_target
from nca_gradio.live import page_html
from nca_gradio.model import NCA, PERCEPTIONS
from nca_gradio.model_folder import (
    CARD_FILE,
    CONFIG_FILE,
    HEALING_FILE,
    LIVE_FILE,
    PREVIEW_FILE,
    QUALITY_FILE,
    TARGET_FILE,
    TRAINING_LOG,
    WEIGHTS_FILE,
    load_folder,
    read_training_log,
    write_json,
)
from nca_gradio.precision import PRECISIONS
from nca_gradio.quality import MIN_TARGET_SIDE, bundled_shortfalls, model_figures
from nca_gradio.render import Damage, Rollout, grow, heal, save_animation
from nca_gradio.scale import Texture, train_many
from nca_gradio.train_config import ConfigError, TrainConfig

MODELS = Path(__file__).resolve().parent
NOTES = MODELS / "notes.json"  # {name: {"well": ..., "badly": ...}}: what each model grows, judged by eye
WORK = MODELS.parent / "build" / "models"  # checkpoints of builds under way (git ignores build/)
MODEL_FILES = (CONFIG_FILE, WEIGHTS_FILE, TRAINING_LOG, TARGET_FILE)  # what a bundled folder takes from training


def existing_credit(folder: Path) -> str | None:
    """The attribution in a folder's current card, so that rebuilding a model keeps it."""
    card = folder / CARD_FILE
    if not card.exists():
        return None
    _, found, rest = card.read_text().partition("\n## Target image\n")
    return rest.strip() or None if found else None


@dataclass
class Job:
    """One bundled model to train: its image, its recipe, and the credit for its card (None: keep the current one)."""

    name: str
    image: str
    config: TrainConfig
    credit: str | None = None


def again(name: str) -> Job:
    """A bundled model trained again from its own target.png and the recipe its training.json records."""
    folder = MODELS / name
    info = read_training_log(folder)
    if info is None or not (folder / TARGET_FILE).is_file():
        raise SystemExit(f"build.py: {folder} has no training.json and target.png to train again from")
    config = TrainConfig.from_dict({**info["config"], "loss": info.get("loss") or info["config"]["loss"]})
    return Job(name, str(folder / TARGET_FILE), config)


def many(listing: Path, config: TrainConfig) -> list[Job]:
    """New models from a JSON list of {name, image, credit}, all on one recipe (images relative to the list)."""
    entries = json.loads(listing.read_text())
    missing = [e["image"] for e in entries if not (listing.parent / e["image"]).is_file()]
    if missing:
        raise SystemExit(f"build.py: {listing} names images that are not there: {', '.join(missing)}")
    return [Job(e["name"], str(listing.parent / e["image"]), config, e["credit"]) for e in entries]


def adopt(source: Path, name: str, credit: str | None) -> dict:
    """A model trained by `nca train` (its output folder) made a bundled one: its files copied in and finished.

    It is judged before anything is copied: a model that misses the zoo's bars (`bundled_shortfalls`) is refused
    and models/ is left as it was.
    """
    missing = [n for n in MODEL_FILES if not (source / n).is_file()]
    if missing:
        raise SystemExit(f"build.py: {source} is not an nca train folder: it lacks {', '.join(missing)}")
    folder = MODELS / name
    credit = credit or existing_credit(folder)
    if credit is None:
        raise SystemExit("build.py: a new bundled model needs --credit (the target image's source and licence)")
    model = load_folder(source)
    rollout, figures = judge(model, target_of(source))
    short = bundled_shortfalls(figures)
    if short:
        raise SystemExit(f"build.py: {source} is not good enough to bundle: {'; '.join(short)}. "
                         "Train it longer or again; models/ is unchanged")
    folder.mkdir(exist_ok=True)
    for file in MODEL_FILES:
        shutil.copy2(source / file, folder / file)
    return {"model": name, **finish(folder, model, credit, rollout, figures)}


def build_many(jobs: list[Job], address: str | None = None, cpus_per_task: float = 1) -> list[dict]:
    """Train the jobs at once with `train_many`, then copy each into models/NAME and write its GIFs, figures and card."""
    textures = [Texture(job.name, job.image, job.config) for job in jobs]
    outcomes = train_many(textures, WORK, address=address, cpus_per_task=cpus_per_task)
    results = []
    for job, outcome in zip(jobs, outcomes):
        if outcome.status == "failed":
            results.append({"model": job.name, "error": outcome.error})
            continue
        folder = MODELS / job.name
        credit = job.credit or existing_credit(folder)
        folder.mkdir(exist_ok=True)
        for name in MODEL_FILES:  # not the training state: the pool is 50 MB and only needed to resume
            shutil.copy2(WORK / job.name / name, folder / name)
        model = load_folder(folder)
        figures = finish(folder, model, credit, *judge(model, load_target(job.image, job.config.target_size)))
        shutil.rmtree(WORK / job.name)  # built: a later build of this name starts afresh
        results.append({"model": job.name, "minutes": round((outcome.seconds or 0) / 60, 1), **figures,
                        **shortfalls_of(figures)})
    return results


def refresh(name: str, credit: str | None = None) -> dict:
    """Rewrite a trained folder's GIFs, quality.json and card (after a change to them), without training.

    `credit` replaces the card's credit (for a model trained with `nca train` and copied in); None keeps it.
    """
    folder = MODELS / name
    model = load_folder(folder)
    figures = finish(folder, model, credit or existing_credit(folder), *judge(model, target_of(folder)))
    return {"model": name, **figures, **shortfalls_of(figures)}


def target_of(folder: Path):
    """The target a trained folder was trained on, at the size its recipe used."""
    try:
        config = TrainConfig.from_dict(read_training_log(folder)["config"])
    except ConfigError as exc:  # a recipe today's TrainConfig cannot train again: no bundled model of it
        raise SystemExit(f"build.py: {folder / TRAINING_LOG} records a recipe this version cannot train again: {exc}") from None
    return load_target(folder / TARGET_FILE, config.target_size)


def judge(model: NCA, target: torch.Tensor) -> tuple[Rollout, dict]:
    """The card's rollout (`grow_preview`: its first 1,024 steps, grown once) and the figures scored on it."""
    rollout = grow_preview(model)  # the card's verdict and the 1,024-step figure score this one rollout
    return rollout, model_figures(model, target, grown=rollout.state).as_dict()


def shortfalls_of(figures: dict) -> dict:
    """{"fails": [...]} for a result line when a built model misses the zoo's bars (tests/test_bundled.py would
    fail it): it is still written, so that it can be looked at, and main() exits with 1; {} when it passes."""
    short = bundled_shortfalls(figures)
    return {"fails": short} if short else {}


def finish(folder: Path, model, credit: str | None, rollout, figures: dict) -> dict:
    """Growth and healing GIFs, the judged figures and the card with the image's credit."""
    # 512 steps: some textures settle late (brick's courses form between steps 500 and 1000)
    growth = grow(model, size=128, steps=512, every=8)
    save_animation(growth.frames, folder / PREVIEW_FILE, fps=25)
    healing = heal(model, Damage(), size=128, grow_steps=256)
    save_animation(healing.frames, folder / HEALING_FILE, fps=25)
    write_json(folder, QUALITY_FILE, figures)
    write_bundled_card(folder, credit, model, rollout)
    return figures


def notes() -> dict[str, dict[str, str]]:
    """What each bundled model grows well and badly, by eye (models/notes.json)."""
    return json.loads(NOTES.read_text()) if NOTES.is_file() else {}


def write_bundled_card(folder: Path, credit: str | None, model=None, rollout=None) -> None:
    """The Hub card (scored on its own growth, as a push scores it) with what it grows and the image's credit,
    and the live page the card links (a push writes one too). `model` and `rollout` (`grow_preview`'s) when at hand."""
    model = load_folder(folder) if model is None else model  # once, for the page and the card
    write_bytes(folder / LIVE_FILE, page_html(model, folder.name, size="auto").encode())
    card = model_card(folder, f"nca-gradio/{folder.name}", rollout=rollout, model=model)
    seen = notes().get(folder.name)
    if seen:
        card += f"\n## What it grows, by eye\n\nWell: {seen['well']}.\n\nBadly: {seen['badly']}.\n"
    if credit:
        card += f"\n## Target image\n\n{credit}\n"
    (folder / CARD_FILE).write_text(card)


def table() -> str:
    """The README's table of bundled models: what each grows (notes.json) and its figures (quality.json)."""
    lines = ["| model | grows well | grows badly | @1024 | @4096 | heal | shape |", "|---|---|---|---|---|---|---|"]
    seen = notes()
    for folder in sorted(p.parent for p in MODELS.glob(f"*/{QUALITY_FILE}")):
        q, n = json.loads((folder / QUALITY_FILE).read_text()), seen.get(folder.name, {})
        shape = f"{q['shape_1024']:.2f}" if "shape_1024" in q else ""
        lines.append(f"| [{folder.name}](models/{folder.name}) | {n.get('well', '')} | {n.get('badly', '')} "
                     f"| {q['combined_1024']:.2f} | {q['combined_4096']:.2f} | {q['heal_ratio']:.2f} | {shape} |")
    return "\n".join(lines)


def report(results: list[dict]) -> int:
    """One JSON line per model; 1 when any failed to train or misses the zoo's bars (said on stderr too)."""
    for result in results:
        print(json.dumps(result), flush=True)
        if "fails" in result:
            print(f"build.py: models/{result['model']} misses the bundled bars: {'; '.join(result['fails'])}. "
                  "It is written so you can look at it; train it again or remove it", file=sys.stderr)
    return 1 if any("error" in r or "fails" in r for r in results) else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image", nargs="?", help="the texture to train on (not with --refresh)")
    parser.add_argument("name", nargs="?")
    parser.add_argument("--again", nargs="+", metavar="NAME", help="train these bundled models again (all: every one) from "
                        "their own target.png and recorded recipe, at once")
    parser.add_argument("--many", metavar="JSON", help="train new models at once: a JSON list of {name, image, credit}; "
                        "image paths are relative to the file; the other flags give their recipe")
    parser.add_argument("--address", help="a Ray cluster for the training (see nca train-many --help); default: this machine")
    parser.add_argument("--cpus-per-task", type=float, default=1, help="CPU cores per model (default 1)")
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
    parser.add_argument("--adopt", metavar="FOLDER", help="make a folder trained by nca train the bundled model NAME "
                        "(copies its weights, config, training log and target, then writes GIFs, figures and card)")
    parser.add_argument("--table", action="store_true", help="print the README's table of bundled models")
    args = parser.parse_args()
    if args.name is None and args.image is not None:  # one positional: a NAME (--refresh, --card)
        args.image, args.name = None, args.image
    if args.table:
        print(table())
        return 0
    if args.again:
        names = sorted(p.parent.name for p in MODELS.glob(f"*/{TRAINING_LOG}")) if args.again == ["all"] else args.again
        return report(build_many([again(name) for name in names], args.address, args.cpus_per_task))
    config = TrainConfig(preset=args.preset, loss="patch", iters=args.iters, seed=args.seed,
                         target_size=args.target_size, pool_size=args.pool_size, perception=args.perception,
                         match_weight=args.match, damage_every=args.damage_every, precision=args.precision)
    if args.many:
        return report(build_many(many(Path(args.many), config), args.address, args.cpus_per_task))
    if args.name is None:
        parser.error("NAME is needed (or use --again or --many)")
    if args.adopt:
        return report([adopt(Path(args.adopt), args.name, args.credit)])
    if args.card:
        write_bundled_card(MODELS / args.name, existing_credit(MODELS / args.name))
        return 0
    if args.refresh:
        return report([refresh(args.name, args.credit)])
    if args.image is None:
        parser.error("IMAGE is needed to train (or use --refresh)")
    if args.target_size < MIN_TARGET_SIDE:  # refused now, not after a quarter of an hour of training
        parser.error(f"--target-size must be at least {MIN_TARGET_SIDE}: a bundled model is scored against its target")
    return report(build_many([Job(args.name, args.image, config, args.credit)], args.address, args.cpus_per_task))


if __name__ == "__main__":
    sys.exit(main())
