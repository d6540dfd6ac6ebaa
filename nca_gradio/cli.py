"""The `nca` command: train, grow and regenerate without a browser.

Bad input exits with status 2 and one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Sequence

from . import __version__

USAGE_ERROR = 2


class UsageError(Exception):
    """A problem the user can fix; printed as one line."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return USAGE_ERROR
    try:
        if args.threads is not None:
            if args.threads < 1:
                raise UsageError(f"--threads must be at least 1, got {args.threads}")
            import torch

            torch.set_num_threads(args.threads)
        return args.handler(args) or 0
    except KeyboardInterrupt:
        print("nca: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - every known failure becomes one line
        if not _is_user_error(exc):
            raise
        print(f"nca: error: {exc}", file=sys.stderr)
        return USAGE_ERROR


def _is_user_error(exc: Exception) -> bool:
    from .hub import HubError
    from .images import ImageError
    from .losses import LossUnavailable
    from .loading import ModelLoadError
    from .render import RenderError
    from .train import ConfigError

    known = (UsageError, ImageError, LossUnavailable, ModelLoadError, RenderError, ConfigError, HubError, FileNotFoundError)
    return isinstance(exc, known)


def build_parser() -> argparse.ArgumentParser:
    from .losses import LOSS_NAMES
    from .model import PERCEPTIONS, PRECISIONS, PRESETS
    from .render import DAMAGE_SHAPES
    from .train import TrainConfig

    defaults = TrainConfig()
    parser = argparse.ArgumentParser(prog="nca", description="Neural Cellular Automata textures: train, grow, regenerate.")
    parser.add_argument("--version", action="version", version=f"nca-gradio {__version__}")
    parser.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice; on a busy "
                        "machine 1 per process is often faster, see bench/RESULTS.md)")
    commands = parser.add_subparsers(title="commands")

    train = commands.add_parser("train", help="train an NCA on a texture image")
    train.add_argument("image", help="the texture: PNG, JPEG, WebP, BMP, TIFF or GIF")
    train.add_argument("-o", "--output", required=True, help="folder for the model (config.json, model.safetensors)")
    train.add_argument("--preset", choices=list(PRESETS), default=defaults.preset)
    train.add_argument("--perception", choices=list(PERCEPTIONS), default=defaults.perception,
                       help="isotropic: the model has no sense of direction; try it for scattered round things on a plain ground "
                       "(stars, dots, bubbles); dense ones (pebbles, beans) come out as mazes")
    train.add_argument("--loss", choices=list(LOSS_NAMES), default=defaults.loss, help="auto: ot with pretrained VGG16, else patch")
    train.add_argument("--match", type=float, default=defaults.match_weight, metavar="WEIGHT",
                       help="patch loss: pull patches towards real ones of the target so objects keep more of their outlines "
                       "(brick joints); try 0.01 to 0.04: more keeps shapes, less keeps colours; about 40%% slower (default 0: off)")
    train.add_argument("--damage-every", type=int, default=defaults.damage_every, metavar="N",
                       help="every Nth iteration erase a random circle in one training grid, so the model practises healing: "
                       "try 4 if your texture blows up where it is damaged (default 0: off)")
    train.add_argument("--iters", type=int, default=defaults.iters)
    train.add_argument("--size", type=int, default=defaults.size, help="training grid side in cells")
    train.add_argument("--target-size", type=int, default=defaults.target_size, help="side the image is resized to")
    train.add_argument("--batch", type=int, default=defaults.batch)
    train.add_argument("--pool-size", type=int, default=defaults.pool_size,
                       help="grids kept between iterations: fewer are grown for longer, which steadies long rollouts")
    train.add_argument("--lr", type=float, default=defaults.lr)
    train.add_argument("--seed", type=int, default=defaults.seed)
    train.add_argument("--device", default=defaults.device, help="auto, cpu, cuda or mps")
    train.add_argument("--grad-checkpoint", action="store_true", help="less memory for long rollouts, a little slower")
    train.add_argument("--precision", choices=PRECISIONS, default=defaults.precision,
                       help="the rollout's arithmetic: auto is bfloat16 on CUDA, else float32; bfloat16 on a CPU with "
                       "bfloat16 units (Intel AMX, AVX512-BF16) trains about 1.5x faster, though it gave worse textures in two trials")
    train.add_argument("--compile", action="store_true",
                       help="CUDA only: compile the rollout and replay it as CUDA graphs (about half a minute first, "
                            "then iterations up to 4x faster: worth it for runs of several hundred iterations)")
    train.add_argument("--resume", action="store_true", help="continue the run saved in --output")
    train.set_defaults(handler=cmd_train)

    grow = commands.add_parser("grow", help="grow a texture from an empty grid")
    grow.add_argument("model", help="a model folder or a Hub repo id (owner/name)")
    grow.add_argument("-o", "--output", required=True, help="OUT.gif, OUT.mp4 or OUT.png")
    _add_render_options(grow, steps=512)
    grow.set_defaults(handler=cmd_grow)

    regen = commands.add_parser("regenerate", help="grow, damage, and watch the texture heal")
    regen.add_argument("model", help="a model folder or a Hub repo id (owner/name)")
    regen.add_argument("-o", "--output", required=True, help="OUT.gif or OUT.mp4")
    _add_render_options(regen, steps=768)
    regen.add_argument("--damage", choices=DAMAGE_SHAPES, default="circle")
    regen.add_argument("--at", type=int, default=512, help="step at which the damage is made")
    regen.add_argument("--x", type=float, default=0.5, help="damage centre, fraction of the width")
    regen.add_argument("--y", type=float, default=0.5, help="damage centre, fraction of the height")
    regen.add_argument("--radius", type=float, default=0.25, help="damage size, fraction of the canvas")
    regen.set_defaults(handler=cmd_regenerate)

    score = commands.add_parser("score", help="rate a generated texture against its target (1.0 = as close as the target to itself)")
    score.add_argument("generated", help="the generated texture image")
    score.add_argument("target", help="the target texture image, at the same pixel scale")
    score.add_argument("--json", action="store_true", help="machine-readable output")
    score.set_defaults(handler=cmd_score)

    push = commands.add_parser("push", help="share a model folder on the Hugging Face Hub (HF_ENDPOINT picks another Hub)")
    push.add_argument("model", help="a model folder")
    push.add_argument("repo_id", help="owner/name of the Hub repo (created if missing)")
    push.add_argument("--private", action="store_true", help="make the repo private (an existing one too); without it an existing repo keeps its visibility")
    push.add_argument("--token", help="a write token; default HF_TOKEN, then `hf auth login` (prefer those: this shows in ps)")
    push.set_defaults(handler=cmd_push)

    pull = commands.add_parser("pull", help="download a model from the Hugging Face Hub (HF_ENDPOINT picks another Hub)")
    pull.add_argument("repo_id", help="owner/name of the Hub repo")
    pull.add_argument("-o", "--output", help="folder for the files (default: the Hugging Face cache)")
    pull.add_argument("--revision", help="branch, tag or commit (default: main)")
    pull.add_argument("--token", help="a read token for private repos; default HF_TOKEN, then `hf auth login`")
    pull.set_defaults(handler=cmd_pull)

    export = commands.add_parser("export", help="the model for the browser: a live HTML page, JSON weights or GLSL shaders")
    export.add_argument("model", help="a model folder or a Hub repo id (owner/name)")
    export.add_argument("-o", "--output", required=True, help="OUT.html (opens offline), OUT.json, or a folder for --format glsl")
    export.add_argument("--format", choices=["html", "json", "glsl"],
                        help="default: from the output: .json is json, a name without suffix glsl, else html")
    export.add_argument("--size", default="auto", help="the page's starting canvas side in cells: 64, 128, 256, 512, "
                        "768 or 1024; auto (default): 256 on a GPU, 64 where WebGL runs on the CPU")
    export.set_defaults(handler=cmd_export)
    return parser


def _add_render_options(parser: argparse.ArgumentParser, steps: int) -> None:
    from .model import PRECISIONS

    parser.add_argument("--size", type=int, default=256, help="canvas side in cells")
    parser.add_argument("--steps", type=int, default=steps)
    parser.add_argument("--every", type=int, default=4, help="keep every k-th step as a frame")
    parser.add_argument("--fps", type=int, default=25)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--precision", choices=PRECISIONS, default="auto",
                        help="auto: bfloat16 on CPUs with bfloat16 units (about 2x faster, same texture), else float32")


def cmd_train(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .hub import write_card
    from .images import load_target
    from .train import TrainConfig, Trainer

    config = TrainConfig(
        preset=args.preset, loss=args.loss, iters=args.iters, size=args.size, target_size=args.target_size,
        batch=args.batch, pool_size=args.pool_size, perception=args.perception, match_weight=args.match, damage_every=args.damage_every, lr=args.lr, seed=args.seed, device=args.device, grad_checkpoint=args.grad_checkpoint,
        precision=args.precision,
    )
    target = load_target(args.image, config.target_size)
    log = lambda message: tqdm.write(f"nca: {message}", file=sys.stderr)  # noqa: E731
    if args.resume:
        trainer = Trainer.resume(args.output, target, {"iters": args.iters, "device": args.device}, log=log)  # keeps its precision
    else:
        trainer = Trainer(target, config, log=log)
    if args.compile and trainer.device.type != "cuda":
        log(f"--compile speeds up CUDA GPUs only; training on {trainer.device} without it")
    trainer.compile = args.compile
    log(f"training {trainer.config.preset} ({trainer.model.num_parameters} parameters) with the {trainer.loss_name} loss on {trainer.device}")
    bar = tqdm(total=trainer.config.iters, initial=trainer.iteration, unit="it", dynamic_ncols=True)

    def show(progress) -> None:
        bar.update(1)
        bar.set_postfix(loss=f"{progress.texture_loss:.4f}", overflow=f"{progress.overflow_loss:.3f}")

    def save() -> None:
        bar.close()
        trainer.save(args.output, target)
        write_card(args.output)  # README.md and preview.gif: the folder is ready to share

    try:
        result = trainer.train(show, preview_every=10**9)
    except FloatingPointError as exc:
        save()
        raise UsageError(f"{exc}; the last good model is saved in {args.output}") from None
    except KeyboardInterrupt:
        save()
        log(f"interrupted at iteration {trainer.iteration}: the model so far is saved in {args.output}; --resume continues")
        return 130
    save()
    log(f"saved {args.output} with its card after {result.iterations} iterations in {result.seconds:.0f} s")
    return 0


def _load(model_ref: str):
    from .loading import load_model

    return load_model(model_ref)


def cmd_grow(args: argparse.Namespace) -> int:
    from .render import grow, save_animation, save_png

    out = _check_output(args.output, (".gif", ".mp4", ".png"))
    model = _load(args.model)
    rollout = grow(model, size=args.size, steps=args.steps, every=args.every, seed=args.seed,
                   precision=args.precision)
    if out.suffix.lower() == ".png":
        save_png(rollout.final, out)
    else:
        save_animation(rollout.frames, out, fps=args.fps)
    print(f"nca: wrote {out} ({args.size}x{args.size}, {args.steps} steps)")
    return 0


def cmd_regenerate(args: argparse.Namespace) -> int:
    from .render import Damage, regenerate, save_animation

    out = _check_output(args.output, (".gif", ".mp4"))
    if not 0 <= args.at < args.steps:
        raise UsageError(f"--at ({args.at}) must be a step before --steps ({args.steps})")
    damage = Damage(args.damage, args.x, args.y, args.radius)
    model = _load(args.model)
    rollout = regenerate(model, damage, size=args.size, grow_steps=args.at, heal_steps=args.steps - args.at, every=args.every, seed=args.seed,
                         precision=args.precision)
    save_animation(rollout.frames, out, fps=args.fps)
    print(f"nca: wrote {out} ({args.damage} damage at step {args.at}, {args.steps} steps)")
    return 0


def cmd_push(args: argparse.Namespace) -> int:
    from .hub import push

    url = push(args.model, args.repo_id, private=args.private, token=args.token, endpoint=os.environ.get("HF_ENDPOINT"))
    print(f"nca: pushed {args.model} to {url}")
    return 0


def cmd_pull(args: argparse.Namespace) -> int:
    from .hub import pull
    from .loading import load_folder

    endpoint = os.environ.get("HF_ENDPOINT")  # read now: huggingface_hub read it at import
    folder = pull(args.repo_id, revision=args.revision, token=args.token, endpoint=endpoint, local_dir=args.output)
    model = load_folder(folder)  # a pull only succeeds if the model loads
    print(f"nca: pulled {args.repo_id} to {folder} ({model.num_parameters} parameters)")
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    import json

    from .images import image_to_tensor, load_image
    from .quality import PATCH_SCALES, score

    result = score(image_to_tensor(load_image(args.generated)), image_to_tensor(load_image(args.target)))
    if args.json:
        print(json.dumps(result.as_dict()))
    else:
        print(f"combined {result.combined:.3f}  (1.0 = as close as the target is to itself; lower is better)")
        print(f"  patches  {result.patches:.3f}  " + "  ".join(f"1/{s}: {v:.3f}" for s, v in zip(PATCH_SCALES, result.per_scale)))
        print(f"  colour   {result.colour:.3f}")
        print(f"  spectrum {result.spectrum:.3f}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .live import export_model

    for path in export_model(args.model, args.output, args.format, args.size, _load):
        print(f"nca: wrote {path}")
    return 0


def _check_output(path: str, suffixes: tuple[str, ...]) -> Path:
    out = Path(path)
    if out.suffix.lower() not in suffixes:
        raise UsageError(f"{path}: the output must end in {', '.join(suffixes)}")
    if out.parent and not out.parent.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
    return out


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
