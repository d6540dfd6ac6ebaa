"""Train many textures at once with Ray: one task per texture, on this machine or on a cluster.

Each texture trains into OUT_DIR/NAME through `train_texture`, the same path as
`nca train` (`run.TrainingRun`: checkpoints while training, then the card): a second run skips
finished models and continues interrupted ones. Ray retries a task once (a dead
worker or an unexpected exception); a bad image or setting fails at once, since
a retry would fail the same way. Ray is an optional extra, imported only here.
"""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from .checkpoint import has_checkpoint
from .errors import USER_ERRORS
from .hub import push
from .images import load_target
from .model_folder import (
    CONFIG_FILE,
    PREVIEW_FILE,
    RECORD_FILE,
    TRAINING_LOG,
    WEIGHTS_FILE,
    load_folder,
    read_json,
    read_training_log,
    slug,
    write_json,
)
from .quality import Score
from .run import TrainingFailed, TrainingRun
from .train import TrainConfig
from .verdict import GROWN_SETTINGS, Verdict, assess, grow_for_verdict

INSTALL_HINT = 'train-many needs Ray, an optional extra: pip install -e ".[scale]" (or pip install "ray>=2.40")'
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif")
SUMMARY_CSV, SUMMARY_MD = "summary.csv", "summary.md"
TASK_PREFIX = "nca-train:"  # Ray's task name; a worker's process title is then "ray::nca-train:NAME"
GPU_SHARE = 1 / 8  # default GPU per task where the cluster has GPUs: a small NCA leaves most of one idle


class ScaleError(Exception):
    """A problem with the request as a whole (no images, two with one name, Ray missing); one line."""


@dataclass
class Texture:
    """An image to train into OUT_DIR/NAME; `config`, when set, is its own recipe (models/build.py has one per model)."""

    name: str
    image: str
    config: TrainConfig | None = None


@dataclass
class Outcome:
    """One row of the summary. `status` is done, skipped or failed; `error` is one line."""

    name: str
    status: str
    seconds: float | None = None
    iterations: int | None = None
    score: float | None = None
    error: str = ""
    resumed_from: int = 0
    hub: str = ""
    verdict: str = ""  # `verdict.Verdict.word`: learned, partly learned, not learned yet

    def status_line(self) -> str:
        if self.status == "failed":
            return f"failed: {self.error}"
        note = f" (resumed at iteration {self.resumed_from})" if self.resumed_from else ""
        return self.status + note + (f"; {self.error}" if self.error else "")


# ------------------------------------------------------------------ one texture


def find_textures(paths: Sequence[str | os.PathLike | Texture]) -> list[Texture]:
    """Images named on the command line, and the images in named folders (not recursive), each with a folder name."""
    found: list[Path | Texture] = []
    for raw in paths:
        path = raw if isinstance(raw, Texture) else Path(raw)
        if isinstance(path, Texture):
            found.append(path)
        elif path.is_dir():
            found += sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        elif path.exists():
            found.append(path)
        else:
            raise ScaleError(f"{path}: no such file or folder")
    if not found:
        raise ScaleError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {', '.join(map(str, paths))}")
    textures: dict[str, Texture] = {}
    for path in found:
        texture = path if isinstance(path, Texture) else Texture(slug(path.stem), str(path))
        if texture.name in textures:
            first = textures[texture.name].image
            raise ScaleError(f"{first} and {texture.image} would both train into {texture.name}/: rename one")
        textures[texture.name] = texture
    return list(textures.values())


def _log_figure(folder: Path, key: str) -> float:
    """A number from the folder's training.json (`iterations`, `seconds`); 0 when there is none or it cannot be read."""
    info = read_training_log(folder) or {}
    try:
        return float(info.get(key, 0))
    except (TypeError, ValueError):
        return 0.0


def trained_iterations(folder: Path) -> int:
    """Iterations in the folder's training.json; 0 when there is none or it cannot be read."""
    return int(_log_figure(folder, "iterations"))


def is_finished(folder: str | Path, config: TrainConfig) -> bool:
    """A model trained to its iterations (or its time budget) with its card: the card and preview are written last."""
    folder = Path(folder)
    files = (CONFIG_FILE, WEIGHTS_FILE, TRAINING_LOG, PREVIEW_FILE)
    if not all((folder / name).is_file() for name in files):
        return False
    return trained_iterations(folder) >= config.iters or bool(config.time_budget and _log_figure(folder, "seconds") >= config.time_budget)


def summary_figures(verdict: Verdict) -> tuple[float | None, str]:
    """The summary's score (the verdict's combined figure, to four places; None unmeasured) and verdict word."""
    return (round(verdict.score.combined, 4) if isinstance(verdict.score, Score) else None), verdict.word


def texture_figures(folder: str | Path) -> tuple[float | None, str]:
    """The summary's score and verdict word for a folder trained earlier: its texture grown and judged anew (`verdict.assess`)."""
    folder = Path(folder)
    return summary_figures(assess(folder, grow_for_verdict(load_folder(folder))))


def train_texture(
    image: str,
    folder: str | Path,
    config: TrainConfig | dict,
    threads: int | None = None,
    checkpoint_seconds: float | None = None,
    log: Callable[[str], None] = lambda message: None,
) -> Outcome:
    """Train one texture into `folder` as `nca train` does, continuing its checkpoint if it has one.

    A bad image or setting comes back as a failed Outcome; anything else raises, so that Ray retries it.
    """
    config = TrainConfig.from_dict(config) if isinstance(config, dict) else config
    folder = Path(folder)
    if threads:
        torch.set_num_threads(threads)
    try:
        target = load_target(image, config.target_size)
        run = TrainingRun.open(folder, target, config, resume=has_checkpoint(folder),
                               overrides={"iters": config.iters, "device": config.device}, log=log, checkpoint_seconds=checkpoint_seconds)
    except USER_ERRORS as exc:
        return Outcome(folder.name, "failed", error=one_line(exc))
    trainer = run.trainer
    resumed_from = trainer.iteration
    (folder / PREVIEW_FILE).unlink(missing_ok=True)  # stale once training goes on; its absence marks the folder unfinished
    try:
        status = run.run(card=True)
    except TrainingFailed as exc:
        return Outcome(folder.name, "failed", round(trainer.seconds, 1), trainer.iteration, error=one_line(exc), resumed_from=resumed_from)
    figure, word = summary_figures(status.verdict) if isinstance(status.verdict, Verdict) else texture_figures(folder)
    outcome = Outcome(folder.name, "done", round(status.seconds, 1), status.iteration, figure, resumed_from=resumed_from, verdict=word)
    write_json(folder, RECORD_FILE, asdict(outcome))
    return outcome


def finished_outcome(folder: Path) -> Outcome:
    """The row of a model a previous run finished: its record, or (for a folder `nca train` made) figures read anew."""
    record = read_json(folder, RECORD_FILE)
    if record is not None:
        return Outcome(folder.name, "skipped", record.get("seconds"), trained_iterations(folder), record.get("score"),
                       verdict=str(record.get("verdict", "")))
    figure, word = texture_figures(folder)
    return Outcome(folder.name, "skipped", _log_figure(folder, "seconds"), trained_iterations(folder), figure, verdict=word)


def one_line(exc: BaseException) -> str:
    """An error as one line: Ray's wrapper unwrapped, and the message's first line only."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException):
        exc = cause
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[0] if lines else type(exc).__name__
    return text if isinstance(exc, USER_ERRORS) else f"{type(exc).__name__}: {text}"


# ------------------------------------------------------------------ many textures


def import_ray():
    try:
        import ray
    except ImportError:
        raise ScaleError(INSTALL_HINT) from None
    return ray


@contextmanager
def ray_session(address: str | None = None, **init_options) -> Iterator[object]:
    """Ray as found: an already initialised one, a cluster at `address`, or a local one started here and stopped after.

    `init_options` go to `ray.init` (num_cpus=2 for a test's small local cluster, say).
    """
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    if address is None:
        # Local workers are started from this process's environment: give them this copy of nca_gradio,
        # also when it is not installed (models/build.py puts the checkout on sys.path).
        root = str(Path(__file__).resolve().parents[1])
        saved = os.environ.get("PYTHONPATH")
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (root, saved) if p)
        try:
            ray.init(**{"include_dashboard": False, "log_to_driver": False, "logging_level": logging.ERROR, **init_options})
        finally:
            if saved is None:
                os.environ.pop("PYTHONPATH", None)
            else:
                os.environ["PYTHONPATH"] = saved
    else:
        try:
            ray.init(**{"address": address, "logging_level": logging.WARNING, **init_options})
        except Exception as exc:  # noqa: BLE001 - Ray raises several kinds here, all of them the same news
            raise ScaleError(f"could not connect to the Ray cluster at {address}: {one_line(exc)}") from None
    try:
        yield ray
    finally:
        ray.shutdown()


def default_gpus_per_task(ray, config: TrainConfig) -> float:
    """A share of a GPU where the cluster has GPUs and the config may use them, else none."""
    if config.device in ("cpu", "mps"):
        return 0.0
    return GPU_SHARE if ray.cluster_resources().get("GPU", 0) > 0 else 0.0


def check_fits(ray, gpus_per_task: float, cpus_per_task: float) -> None:
    """Refuse a task no node could ever run: Ray would keep it pending forever."""
    have = ray.cluster_resources()
    for flag, wanted, kind in (("--cpus-per-task", cpus_per_task, "CPU"), ("--gpus-per-task", gpus_per_task, "GPU")):
        if wanted > have.get(kind, 0):
            raise ScaleError(f"{flag} {wanted:g} asks for more than the Ray cluster has ({have.get(kind, 0):g} {kind}s)")


def check_resources(gpus_per_task: float | None, cpus_per_task: float) -> None:
    if cpus_per_task <= 0:
        raise ScaleError(f"--cpus-per-task must be above 0, got {cpus_per_task}")
    if gpus_per_task is not None and (gpus_per_task < 0 or (gpus_per_task > 1 and gpus_per_task != int(gpus_per_task))):
        raise ScaleError(f"--gpus-per-task must be a fraction between 0 and 1 or a whole number, got {gpus_per_task}")


def train_many(
    images: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    config: TrainConfig | dict | None = None,
    address: str | None = None,
    gpus_per_task: float | None = None,
    cpus_per_task: float = 1,
    push_to: str | None = None,
    hub_token: str | None = None,
    hub_endpoint: str | None = None,
    checkpoint_seconds: float | None = None,
    progress: bool = True,
) -> list[Outcome]:
    """Train every texture in `images` (files, folders, `Texture`s) into OUT_DIR/NAME, one Ray task each; write the summary.

    `config` is a TrainConfig or a dict of its fields, for each texture without a config of its own.
    Finished models are skipped, interrupted ones continue. With `push_to`, every finished model goes
    to the Hub as PUSH_TO/NAME with its card. Returns the summary rows in the order of the images.
    """
    from tqdm import tqdm

    config = TrainConfig.from_dict(config) if isinstance(config, dict) else (config or TrainConfig())
    check_resources(gpus_per_task, cpus_per_task)
    textures = [t if t.config else Texture(t.name, t.image, config) for t in find_textures(images)]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    outcomes: dict[str, Outcome] = {}
    todo = []
    for texture in textures:
        if is_finished(out / texture.name, texture.config):
            outcomes[texture.name] = finished_outcome(out / texture.name)
        else:
            todo.append(texture)
    if todo:
        import_ray()  # before anything starts: without Ray, one line that says how to install it
    bar = tqdm(total=len(textures), initial=len(textures) - len(todo), unit="texture", dynamic_ncols=True, disable=not progress)
    try:
        for outcome in outcomes.values():
            publish(outcome, out, push_to, hub_token, hub_endpoint)
        if todo:
            with ray_session(address) as ray:
                gpus = default_gpus_per_task(ray, config) if gpus_per_task is None else gpus_per_task
                check_fits(ray, gpus, cpus_per_task)
                for outcome in run_tasks(ray, todo, out, gpus, cpus_per_task, checkpoint_seconds):
                    outcomes[outcome.name] = publish(outcome, out, push_to, hub_token, hub_endpoint)
                    bar.update(1)
                    bar.set_postfix(failed=sum(o.status == "failed" for o in outcomes.values()))
    except KeyboardInterrupt:
        for texture in textures:
            interrupted = Outcome(texture.name, "failed", error="interrupted: run again to continue from its checkpoint")
            outcomes.setdefault(texture.name, interrupted)
        raise
    finally:
        bar.close()
        write_summary(out, [outcomes[t.name] for t in textures if t.name in outcomes])
    return [outcomes[t.name] for t in textures]


def run_tasks(
    ray, textures: list[Texture], out: Path, gpus_per_task: float, cpus_per_task: float, checkpoint_seconds: float | None
) -> Iterator[Outcome]:
    """One Ray task per texture, all submitted at once; their outcomes as they finish."""
    task = ray.remote(num_cpus=cpus_per_task, num_gpus=gpus_per_task, max_retries=1, retry_exceptions=True)(train_texture)
    threads = max(1, int(cpus_per_task))
    pending = {}
    for t in textures:
        named = task.options(name=TASK_PREFIX + t.name)
        pending[named.remote(t.image, str(out / t.name), t.config.to_dict(), threads, checkpoint_seconds)] = t
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        texture = pending.pop(ready[0])
        try:
            yield ray.get(ready[0])
        except ray.exceptions.RayError as exc:  # after its retry
            yield Outcome(texture.name, "failed", error=one_line(exc))


def publish(outcome: Outcome, out: Path, push_to: str | None, token: str | None, endpoint: str | None) -> Outcome:
    """Push a finished model as PUSH_TO/NAME; a failed push is noted in the row, the model stays."""
    if push_to and outcome.status in ("done", "skipped"):
        try:
            repo_id = f"{push_to}/{outcome.name}"
            outcome.hub = push(out / outcome.name, repo_id, token=token, endpoint=endpoint, log=lambda message: None)
        except Exception as exc:  # noqa: BLE001 - one failed push must not stop the others
            outcome.error = f"push failed: {one_line(exc)}"
    return outcome


def write_summary(out: Path, outcomes: Sequence[Outcome]) -> None:
    """summary.csv and summary.md: name, seconds, iterations, score, verdict, status (and the Hub URL when pushed)."""
    hub = any(o.hub for o in outcomes)
    header = ["name", "seconds", "iterations", "score", "verdict", "status"] + (["hub"] if hub else [])

    def cells(o: Outcome) -> list[str]:
        values = [o.name, o.seconds, o.iterations, o.score, o.verdict, o.status_line()] + ([o.hub] if hub else [])
        return ["" if v is None else str(v) for v in values]

    with open(out / SUMMARY_CSV, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(cells(o) for o in outcomes)
    rows = ["| " + " | ".join(c.replace("|", "/") for c in cells(o)) + " |" for o in outcomes]
    counts = {s: sum(o.status == s for o in outcomes) for s in ("done", "skipped", "failed")}
    lines = [f"# train-many: {counts['done']} done, {counts['skipped']} skipped, {counts['failed']} failed", "",
             (f"`score` is `nca score` of a texture {GROWN_SETTINGS}, against the target: 1.0 is as close as the target "
              "is to itself, lower is better; `verdict` says what that means (learned, partly learned, not learned yet)."), "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header), *rows]
    (out / SUMMARY_MD).write_text("\n".join(lines) + "\n")
