"""The `nca` command: train, grow and heal without a browser.

Bad input exits with status 2 and one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from . import __version__
from .errors import USER_ERRORS, UserError

if TYPE_CHECKING:
    from .model import NCA

USAGE_ERROR = 2
TERMINATED = 128 + signal.SIGTERM  # the shell's status for a process ended by SIGTERM
DASHED_VALUE_OPTIONS = ("--time",)  # options whose value may start with "-": a negative one is refused with its reason
DASHED_VALUE = re.compile(r"-[\d.]")


class UsageError(UserError):
    """A problem the user can fix; printed as one line."""


class OneLineParser(argparse.ArgumentParser):
    """argparse whose refusals are one line, like every other user error, pointing to --help for the usage."""

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE_ERROR, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(_attach_dashed_values(sys.argv[1:] if argv is None else argv))
    if not getattr(args, "handler", None):
        parser.print_help()
        return USAGE_ERROR
    try:
        if args.threads is not None:
            import torch

            torch.set_num_threads(_threads(args.threads))
        return args.handler(args) or 0
    except KeyboardInterrupt:
        print("nca: interrupted", file=sys.stderr)
        return 130
    except USER_ERRORS as exc:
        print(f"nca: error: {exc}", file=sys.stderr)
        return USAGE_ERROR


def _attach_dashed_values(argv: Sequence[str]) -> list[str]:
    """`--time -5s` as `--time=-5s`: argparse takes -5s for an option and says only "expected one argument",
    where the option's own check says what is wrong with the value."""
    rest, joined = list(argv), []
    while rest:
        arg = rest.pop(0)
        if arg in DASHED_VALUE_OPTIONS and rest and DASHED_VALUE.match(rest[0]):
            arg = f"{arg}={rest.pop(0)}"
        joined.append(arg)
    return joined


def _threads(asked: int) -> int:
    """--threads, at most the cores this process may use: far more threads than cores crash torch (a segfault)."""
    if asked < 1:
        raise UsageError(f"--threads must be at least 1, got {asked}")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if asked > cores:
        print(f"nca: --threads {asked} is more than the {cores} CPU cores here; using {cores}", file=sys.stderr)
    return min(asked, cores)


def build_parser() -> argparse.ArgumentParser:
    from .live import EXPORT_FORMATS
    from .render import DAMAGE_SHAPES, GROW_STEPS, HEAL_STEPS, Damage
    from .shadertoy import DEFAULT_SIZE as SHADERTOY_SIZE
    from .train_options import add_training_options

    parser = OneLineParser(prog="nca", description="Neural Cellular Automata textures: train, grow, heal.")
    parser.add_argument("--version", action="version", version=f"nca-gradio {__version__}")
    parser.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice; on a busy "
                        "machine 1 per process is often faster)")
    commands = parser.add_subparsers(title="commands")

    train = commands.add_parser("train", help="train an NCA on a texture image")
    train.add_argument("image", help="the texture: PNG, JPEG, WebP, BMP, TIFF or GIF")
    train.add_argument("-o", "--output", required=True, help="folder for the model (config.json, model.safetensors)")
    add_training_options(train)
    train.add_argument("--compile", action="store_true",
                       help="CUDA only: compile the rollout with torch.compile instead of replaying each whole iteration "
                            "as one CUDA graph (the default on CUDA); about half a minute to compile first")
    train.add_argument("--eager", action="store_true",
                       help="CUDA only: step op by op, without the CUDA graph of each iteration (to compare, or debug)")
    train.add_argument("--resume", action="store_true", help="continue the run saved in --output")
    train.add_argument("--force", action="store_true", help="replace the model already in --output (without it, that is refused)")
    train.set_defaults(handler=cmd_train)

    grow = commands.add_parser("grow", help="grow a texture from an empty grid")
    grow.add_argument("model", help="a model folder or a Hub repo id (owner/name)")
    grow.add_argument("-o", "--output", required=True, help="OUT.gif, OUT.mp4 or OUT.png")
    _add_render_options(grow, steps=GROW_STEPS)
    grow.set_defaults(handler=cmd_grow)

    graft = commands.add_parser("graft", help="grow two rules on one grid: a split or a mask says which cell runs which")
    graft.add_argument("a", help="rule A: a model folder or a Hub repo id (owner/name)")
    graft.add_argument("b", help="rule B: a model folder or a Hub repo id")
    graft.add_argument("-o", "--output", required=True, help="OUT.gif, OUT.mp4 or OUT.png")
    _add_graft_where(graft, required=True)
    _add_render_options(graft, steps=GROW_STEPS, precision=False)
    graft.set_defaults(handler=cmd_graft)

    heal = commands.add_parser("heal", aliases=["regenerate"], help="grow, damage, and watch the texture heal")
    heal.add_argument("model", help="a model folder or a Hub repo id (owner/name)")
    heal.add_argument("-o", "--output", required=True, help="OUT.gif or OUT.mp4")
    _add_render_options(heal, steps=GROW_STEPS + HEAL_STEPS)
    heal.add_argument("--damage", choices=DAMAGE_SHAPES, default=Damage.shape)
    heal.add_argument("--at", type=int, default=GROW_STEPS, help="step at which the damage is made")
    heal.add_argument("--x", type=float, default=Damage.x, help="damage centre, fraction of the width")
    heal.add_argument("--y", type=float, default=Damage.y, help="damage centre, fraction of the height")
    heal.add_argument("--radius", type=float, default=Damage.size, help="damage size, fraction of the canvas")
    heal.add_argument("--graft", metavar="B", help="a second rule (folder or Hub repo id) on the same grid, as nca graft grows "
                      "them: MODEL runs where --split or --mask says A, B the rest (float32)")
    _add_graft_where(heal, required=False)
    heal.set_defaults(handler=cmd_heal)

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

    search = commands.add_parser("search", help="find NCA models others shared on the Hub (HF_ENDPOINT picks another Hub)")
    search.add_argument("text", nargs="?", default="", help="a part of the repo id to look for (default: every model)")
    search.add_argument("--sort", choices=["downloads", "likes", "recent"], default="downloads")
    search.add_argument("--limit", type=int, default=20, help="how many to list (1 to 1000)")
    search.set_defaults(handler=cmd_search)

    many = commands.add_parser("train-many", help="train many textures at once with Ray, on this machine or a cluster")
    many.add_argument("images", nargs="+", metavar="IMAGES_OR_DIR", help="images, and folders of images")
    many.add_argument("-o", "--output", required=True, help="folder for the models (one folder each) and summary.csv/.md")
    add_training_options(many)
    many.add_argument("--address", help="a Ray cluster: ray://HOST:10001, or auto for one started with `ray start` "
                      "(default: a local Ray started for this run); OUTPUT and the images must be on storage every node sees")
    many.add_argument("--gpus-per-task", type=float, help="GPU share per texture, so several train on one GPU "
                      "(default: 1/8 where the cluster has GPUs, else 0)")
    many.add_argument("--cpus-per-task", type=float, default=1, help="CPU cores per texture (default 1)")
    many.add_argument("--push-to", metavar="OWNER", help="push each finished model to the Hub as OWNER/NAME, with its card")
    many.set_defaults(handler=cmd_train_many)

    export = commands.add_parser("export", help="the model for the browser: a live HTML page, JSON weights, GLSL shaders "
                                 "or Shadertoy code")
    export.add_argument("model", help="a model folder or a Hub repo id (owner/name)")
    export.add_argument("-o", "--output", required=True, help="OUT.html (opens offline), OUT.json, or a folder for --format "
                        "glsl or shadertoy")
    export.add_argument("--format", choices=list(EXPORT_FORMATS),
                        help="default: from the output: .json is json, a name without suffix glsl, else html; shadertoy "
                        "writes buffer_a.glsl, image.glsl and PASTE.txt")
    export.add_argument("--size", default="auto", help="the page's starting canvas side in cells: 64, 128, 256, 512, "
                        "768 or 1024; auto (default): 256 on a GPU, 64 where WebGL runs on the CPU; for shadertoy the "
                        f"grid's side, auto {SHADERTOY_SIZE}")
    export.add_argument("--graft", metavar="B", help="a second model (folder or Hub repo id): the page runs both rules, "
                        "B on the right half (or where --split or --mask says), with a brush that paints where each runs (html only)")
    _add_graft_where(export, required=False)
    export.set_defaults(handler=cmd_export)
    return parser


def _add_graft_where(parser: argparse.ArgumentParser, required: bool) -> None:
    """--split and --mask: which cells of a graft run rule A and which rule B."""
    from .graft import SPLITS

    where = parser.add_mutually_exclusive_group(required=required)
    where.add_argument("--split", choices=SPLITS, help="vertical: A left, B right; horizontal: A top, B bottom; circle: B in a centred disc")
    where.add_argument("--mask", metavar="IMAGE", help="an image stretched to the grid: black runs A, white B, grey blends "
                       "the two rules' weights where they share an architecture (a rule and its `train --from` child)")


def _add_render_options(parser: argparse.ArgumentParser, steps: int, precision: bool = True) -> None:
    from .precision import PRECISIONS
    from .render import FRAME_EVERY, GROW_SIZE

    parser.add_argument("--size", type=int, default=GROW_SIZE, help="canvas side in cells")
    parser.add_argument("--steps", type=int, default=steps)
    parser.add_argument("--every", type=int, default=FRAME_EVERY, help="keep every k-th step as a frame")
    parser.add_argument("--fps", type=int, default=25)
    parser.add_argument("--seed", type=int, default=0)
    if precision:  # a graft steps in float32 only
        parser.add_argument("--precision", choices=PRECISIONS, default="auto",
                            help="auto: bfloat16 on CPUs with bfloat16 units (about 2x faster, same texture), else float32")


def cmd_train(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .atomic import prepare_folder, removed_if_refused
    from .images import load_target
    from .model_folder import REQUIRED_FILES, clear_model_files
    from .run import TrainingRun, sigterm_stops_runs
    from .train import SMOOTHING
    from .train_options import config_from_args

    out = Path(args.output)
    if args.resume and args.force:
        raise UsageError("--resume continues the model in --output and --force replaces it: use one of them")
    if not args.resume and not args.force and any((out / name).exists() for name in REQUIRED_FILES):
        raise UsageError(f"{out} already holds a model: add --resume to continue training it, or --force to replace it")
    if args.start_from and args.resume:
        raise UsageError(f"--resume continues the run saved in {out}, which keeps the model it started from: leave out --from")
    if args.start_from and Path(args.start_from).resolve() == out.resolve():
        raise UsageError(f"--from and --output are both {out}: the new model would replace the one it starts from; choose another --output")
    with removed_if_refused(out):  # a refused start model, setting or image leaves no empty --output behind
        prepare_folder(args.output)  # now, not after the image is read and the loss built
        start = _start(args)
        config = config_from_args(args, start.config if start else None)
        target = load_target(args.image, config.target_size)
    log = lambda message: tqdm.write(f"nca: {message}", file=sys.stderr)
    asked = {"iters": args.iters, "time_budget": args.time_budget, "lr": args.lr}  # on --resume, what was given changes
    overrides = {**{k: v for k, v in asked.items() if v is not None}, "device": args.device}
    if args.force:
        clear_model_files(out)  # the old model's card, preview and figures would describe this one
    run = TrainingRun.open(out, target, config, resume=args.resume, overrides=overrides, log=log, start=start)
    trainer = run.trainer
    if args.compile and trainer.device.type != "cuda":
        log(f"--compile speeds up CUDA GPUs only; training on {trainer.device} without it")
    trainer.compile = args.compile
    trainer.cuda_graph = not args.eager
    origin = f", starting from the rule of {trainer.config.start_from}" if trainer.config.start_from else ""
    log(f"training {trainer.config.preset} ({trainer.model.num_parameters} parameters){origin} with the {trainer.loss_name} loss on {trainer.device}")
    budget = f", at most {trainer.config.time_budget:g} s" if trainer.config.time_budget else ""
    log(f"recipe for {trainer.device.type}: {trainer.config.iters} iterations{budget}, batch {trainer.config.batch}, "
        f"pool {trainer.config.pool_size}, patch matching {trainer.config.match_weight:g}")
    bar = tqdm(initial=trainer.iteration, unit="it", dynamic_ncols=True)
    show_progress(bar, trainer.status())
    log(f"the loss shown is the median of the last {SMOOTHING} iterations' texture loss: single iterations spike early, "
        "while the rule learns to keep its cells in range (the overflow penalty)")

    def show(status) -> None:
        show_progress(bar, status)

    restore_sigterm = sigterm_stops_runs()
    try:
        status = run.run(show, card=True)
    except KeyboardInterrupt:
        log(f"interrupted at iteration {trainer.iteration}: the model so far is saved in {out}; --resume continues")
        return 130
    finally:
        bar.close()
        restore_sigterm()
    if status.stopped:
        log(f"stopped by SIGTERM at iteration {trainer.iteration}: the model so far is saved in {out}; --resume continues")
    else:
        log(f"saved {out} with its card after {status.iteration} iterations in {status.seconds:.0f} s")
    for line in verdict_lines(status.verdict, args.image, out, bool(trainer.config.time_budget)):
        log(line)
    return TERMINATED if status.stopped else 0


def verdict_lines(verdict, image: str, out: Path, budget: bool) -> list[str]:
    """The run's verdict (`verdict.Verdict`) as the command's last lines, with the line that trains it longer.

    A run with a time budget keeps it on --resume, so the line gives the time the advice estimates.
    """
    if verdict is None:
        return []
    lines = verdict.lines()
    if verdict.advice:
        more_time = f" --time {verdict.minutes}m" if budget else ""
        lines.append(f"to go on: nca train {image} -o {out} --resume --iters {verdict.goal}{more_time}")
    return lines


def show_progress(bar, status) -> None:
    """The tqdm bar as `Status.progress` says: no total while a time-budgeted run measures its speed, then seconds of the budget."""
    progress = status.progress
    if progress.total is None:
        bar.bar_format = "measuring speed… {n_fmt}it [{elapsed}{postfix}]"
    elif progress.unit == "s":
        bar.unit, bar.bar_format = "s", "{l_bar}{bar}| {n:.0f}/{total:.0f} s of the time limit [{elapsed}<{remaining}{postfix}]"
    else:
        bar.unit, bar.bar_format = "it", None  # tqdm's own: iterations of a fixed total
    bar.total, bar.n = progress.total, progress.done
    if status.history:
        bar.set_postfix({"it": status.iteration, "texture loss": f"{status.recent_texture_loss:.4g}", "overflow": f"{status.overflow_loss:.3g}"})
    else:
        bar.refresh()


def _load(model_ref: str):
    from .loading import load_model

    return load_model(model_ref)


def _start(args: argparse.Namespace) -> NCA | None:
    """The model --from names, loaded once (a Hub repo is pulled once), or None."""
    from .loading import load_start

    return load_start(args.start_from) if args.start_from else None


def cmd_grow(args: argparse.Namespace) -> int:
    return _grow_into(args, lambda: _load(args.model))


def cmd_graft(args: argparse.Namespace) -> int:
    return _grow_into(args, lambda: _graft(args.a, args.b, args))


def _graft(a: str, b: str, args: argparse.Namespace):
    """Rules a and b on one grid of --size, where --split or --mask says (`graft.Graft`)."""
    from .graft import Graft, image_mask, split_mask

    mask = image_mask(args.mask, args.size, args.size) if args.mask else split_mask(args.split, args.size, args.size)
    return Graft(_load(a), _load(b), mask)


def _grow_into(args: argparse.Namespace, build: Callable) -> int:
    """`nca grow` and `nca graft`: check the request and the output first, then build the rule(s) (a pull can
    take a while), grow from an empty grid, and write the last frame (PNG) or all of them (GIF, MP4)."""
    from .atomic import prepare_file
    from .render import check_frame_memory, check_request, grow, save_animation, save_png

    out = prepare_file(args.output, (".gif", ".mp4", ".png"))
    png = out.suffix.lower() == ".png"
    check_request(args.size, args.steps, args.every, args.seed)
    if not png:  # a PNG keeps only the last frame
        check_frame_memory(args.size, args.size, args.steps, args.every)
    rollout = grow(build(), size=args.size, steps=args.steps, every=args.every, seed=args.seed,
                   precision=getattr(args, "precision", "float32"), keep_frames=not png)
    if png:
        save_png(rollout.final, out)
    else:
        save_animation(rollout.frames, out, fps=args.fps)
    _check_written(out)
    print(f"nca: wrote {out} ({args.size}x{args.size}, {args.steps} steps)")
    return 0


def cmd_heal(args: argparse.Namespace) -> int:
    from .atomic import prepare_file
    from .render import Damage, check_frame_memory, check_request, heal, save_animation

    out = prepare_file(args.output, (".gif", ".mp4"))
    if bool(args.graft) != bool(args.split or args.mask):
        raise UsageError("--graft B needs --split or --mask (where B runs), and those need --graft: give both or neither")
    if not 0 <= args.at < args.steps:
        raise UsageError(f"--at ({args.at}) must be a step before --steps ({args.steps})")
    damage = Damage(args.damage, args.x, args.y, args.radius)
    check_request(args.size, args.steps, args.every, args.seed)
    check_frame_memory(args.size, args.size, args.steps, args.every)
    rules = _graft(args.model, args.graft, args) if args.graft else _load(args.model)
    rollout = heal(rules, damage, size=args.size, grow_steps=args.at, heal_steps=args.steps - args.at, every=args.every, seed=args.seed,
                   precision="float32" if args.graft else args.precision)
    save_animation(rollout.frames, out, fps=args.fps)
    _check_written(out)
    grafted = f", {args.model} grafted with {args.graft}" if args.graft else ""
    print(f"nca: wrote {out} ({args.damage} damage at step {args.at}, {args.steps} steps{grafted})")
    return 0


def cmd_push(args: argparse.Namespace) -> int:
    from .hub import push

    url = push(args.model, args.repo_id, private=args.private, token=args.token, endpoint=os.environ.get("HF_ENDPOINT"))
    print(f"nca: pushed {args.model} to {url}")
    return 0


def cmd_pull(args: argparse.Namespace) -> int:
    from .hub import pull
    from .model_folder import load_folder

    endpoint = os.environ.get("HF_ENDPOINT")  # read now: huggingface_hub read it at import
    folder = pull(args.repo_id, revision=args.revision, token=args.token, endpoint=endpoint, local_dir=args.output)
    model = load_folder(folder)  # a pull only succeeds if the model loads
    print(f"nca: pulled {args.repo_id} to {folder} ({model.num_parameters} parameters)")
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    from .gallery import find, table

    result = find(args.text, sort=args.sort, limit=args.limit, endpoint=os.environ.get("HF_ENDPOINT"))
    found = result.models
    if result.skipped:
        print(f"nca: {result.skipped_note()}", file=sys.stderr)
    if not found:
        print(f"nca: no shared NCA models match {args.text!r}" if args.text else "nca: no shared NCA models found", file=sys.stderr)
        return 0
    print(table(found))
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
        print(f"shape    {result.shape:.3f}  (regions enclosed by outlines: their sizes and roundness; not part of combined)")
    return 0


def cmd_train_many(args: argparse.Namespace) -> int:
    from .atomic import prepare_folder, removed_if_refused
    from .scale import SUMMARY_MD, ScaleError, train_many
    from .train_options import config_from_args

    with removed_if_refused(args.output):  # a refused start model or setting leaves no empty output folder behind
        prepare_folder(args.output)
        start = _start(args)  # each texture's run loads it again, by the name given: the workers may be elsewhere
        config = config_from_args(args, start.config if start else None)
    try:
        outcomes = train_many(args.images, args.output, config, address=args.address, gpus_per_task=args.gpus_per_task,
                              cpus_per_task=args.cpus_per_task, push_to=args.push_to, hub_endpoint=os.environ.get("HF_ENDPOINT"))
    except ScaleError as exc:
        raise UsageError(str(exc)) from None
    for outcome in outcomes:
        if outcome.status == "failed" or outcome.error:
            print(f"nca: {outcome.name}: {outcome.status_line()}", file=sys.stderr)
    counts = {status: sum(o.status == status for o in outcomes) for status in ("done", "skipped", "failed")}
    print(f"nca: {counts['done']} trained, {counts['skipped']} already done, {counts['failed']} failed; "
          f"summary in {Path(args.output) / SUMMARY_MD}")
    return 1 if counts["failed"] else 0


def cmd_export(args: argparse.Namespace) -> int:
    from .live import export_model

    for path in export_model(args.model, args.output, args.format, args.size, _load, args.graft, args.split, args.mask):
        print(f"nca: wrote {path}")
    return 0


def _check_written(out: Path) -> None:
    """Say "wrote" only of a file that is there (the writers check that it is complete before it replaces anything)."""
    if not out.is_file() or out.stat().st_size == 0:
        raise UsageError(f"{out} was not written; check the folder's free space and permissions")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
