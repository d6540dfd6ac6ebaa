"""A model's card and what a shared model folder holds besides the model: the card, a preview and the live page.

The card (README.md) is what the Hub shows: metadata by which the model is found, the preview, the training
settings with the `nca train` line that repeats them, the model's size, its quality and how to use it. It is
generated from the folder every time it is shared, so it never describes an older model than the one beside it.
"""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Callable
from pathlib import Path

from huggingface_hub import ModelCard, ModelCardData

from .atomic import replace_files, scratch_folder, write_bytes
from .errors import UserError
from .live import page_html
from .model import NCA, PERCEPTION_ABOUT
from .model_folder import (
    CARD_FILE,
    LIVE_FILE,
    PREVIEW_FILE,
    QUALITY_FILE,
    REQUIRED_FILES,
    SHARED_FILES,
    TARGET_FILE,
    load_folder,
    read_json,
    read_training_log,
    start_reference,
)
from .quality import HEAL_TRIALS
from .render import Rollout, save_animation
from .train import TrainConfig
from .train_options import training_flags
from .verdict import GROWN_SETTINGS, GROWN_STEPS, REPEAT_LINE, Verdict, assess, grow_for_verdict

LIBRARY_NAME = "nca-gradio"
LICENSE = "mit"
TAGS = ["neural-cellular-automata", "texture-synthesis", "pytorch"]  # the first is the one the gallery lists
SCORE_KEY = "nca_score"  # the card's combined quality figure in its metadata, so a listing (the gallery) can show it
PREVIEW_STEPS, PREVIEW_FPS = 200, 25  # the preview shows the first steps of the rollout the verdict scores
NOT_REPEATED = ("device",)  # the machine's choice, not the model's: the "train it again" line leaves it out (`_reproduce_line`)
UNSET_WHEN_EMPTY = ("time_budget", "start_from")  # options the line gives only when set: no budget, no start model


class CardError(UserError):
    """A generated card that huggingface_hub would not read back as written: a bug to report."""


def grow_preview(model: NCA) -> Rollout:
    """The rollout a card scores and shows the start of: the verdict's (`verdict.grow_for_verdict`), so it is grown once."""
    return grow_for_verdict(model)


def preview_frames(rollout: Rollout) -> list:
    """The preview's frames: the growth up to `PREVIEW_STEPS`, where a texture appears (the rest of the rollout is scored)."""
    return [frame for frame, step in zip(rollout.frames, rollout.steps) if step <= PREVIEW_STEPS]


# ------------------------------------------------------------------ the card


def card_metadata(score: float | None = None) -> ModelCardData:
    """Tags and library name, by which the gallery and `nca search` find the model, and its score when measured.

    A texture that grew NaN or inf has no score to list (and NaN would not read back equal to itself).
    """
    extra = {SCORE_KEY: round(score, 2)} if score is not None and math.isfinite(score) else {}
    return ModelCardData(library_name=LIBRARY_NAME, license=LICENSE, tags=list(TAGS), **extra)


def model_card(
    folder: str | Path, repo_id: str | None = None, rollout=None, model: NCA | None = None, name: str | None = None,
    verdict: Verdict | None = None,
) -> str:
    """The README.md for a model folder: metadata, preview, training settings, size, quality and usage.

    `rollout` (from `grow_preview`), `model` (the folder's, loaded) and `verdict` (`verdict.assess` of that rollout) spare
    the work when the caller already has them.
    Without a repo id the card is for a local copy: titled `name` (default: the folder's name), and its usage
    line grows the folder of that name.
    """
    folder = Path(folder)
    model = load_folder(folder) if model is None else model
    if rollout is None and (folder / TARGET_FILE).exists():
        rollout = grow_preview(model)
    verdict = assess(folder, rollout) if verdict is None and rollout is not None else verdict
    local_name = _cell(name or folder.name).replace(" ", "-").replace("`", "")
    title = repo_id.split("/")[-1] if repo_id else local_name
    sections = [
        (
            f"# {title}\n\nA Neural Cellular Automaton that grows a texture from an empty grid, made with nca-gradio. "
            "Every cell looks at its 3x3 neighbourhood and updates itself; the grid is a torus, so the texture tiles and "
            "can be grown at any size."
        ),
        f"![growing]({PREVIEW_FILE})",
        _target_section(folder),
        _model_section(model),
        _training_section(folder),
        _quality_section(folder, verdict),
        _usage_section(repo_id) if repo_id else _usage_section(f"./{local_name}", f"From the folder that holds `{local_name}/` (this model's files):"),
    ]
    body = "\n\n".join(s for s in sections if s) + "\n"
    metadata = card_metadata(verdict.score.combined if verdict is not None and verdict.score is not None else None)
    text = f"---\n{metadata.to_yaml()}\n---\n\n{body}"
    _check_card(text, metadata)
    return text


def _check_card(text: str, metadata: ModelCardData) -> None:
    """Round-trip the front matter through huggingface_hub's own parser (the Hub validates it again on push)."""
    data = ModelCard(text).data.to_dict()
    if data != metadata.to_dict():
        raise CardError(f"the generated model card's metadata does not round-trip ({sorted(data)}): please report this bug")


def _target_section(folder: Path) -> str:
    return f"Target texture:\n\n![target]({TARGET_FILE})" if (folder / TARGET_FILE).exists() else ""


def _model_section(model: NCA) -> str:
    return (
        f"## Model\n\n{model.num_parameters:,} parameters: {model.channels} channels, {model.hidden} hidden units, "
        f"cells fire with probability {model.fire_rate}; each cell sees its neighbourhood through {PERCEPTION_ABOUT[model.perception]}."
    )


def _training_section(folder: Path) -> str:
    info = read_training_log(folder)
    if info is None:
        return ""
    config = info.get("config", {})
    seconds = info.get("seconds")
    rows = [
        ("preset", config.get("preset")),
        ("perception", config.get("perception")),
        ("loss", info.get("loss") or config.get("loss")),
        ("patch matching", config.get("match_weight") or None),
        ("iterations", info.get("iterations", config.get("iters"))),
        ("training size", f"{config['size']} x {config['size']}" if "size" in config else None),
        ("target size", config.get("target_size")),
        ("time taken", f"{seconds:.0f} s" if isinstance(seconds, (int, float)) else None),
        ("device", info.get("device")),
        ("precision", trained_precision(info)),
    ]
    table = "\n".join(f"| {name} | {_cell(value)} |" for name, value in rows if value is not None)
    start = config.get("start_from")
    origin = (f"Fine-tuned from `{_cell(start).replace('`', '')}`: training began from that model's rule, not a blank one, "
              "and kept its architecture.\n\n") if isinstance(start, str) and start else ""
    return f"## Training\n\n{origin}| setting | value |\n|---|---|\n{table}" + _reproduce_line({**config, "precision": trained_precision(info)}, info.get("loss"))


def trained_precision(info: dict) -> str:
    """The dtype the rollouts really ran in; logs older than the precision setting trained in bfloat16 on CUDA only."""
    recorded = info.get("precision")
    if recorded in ("float32", "bfloat16"):
        return recorded
    return "bfloat16" if str(info.get("device", "")).startswith("cuda") else "float32"


def _reproduce_line(config: dict, loss: str | None) -> str:
    """The `nca train` command that runs this model's training again: its settings, seed and loss.

    Every training option is written out except --device, and --time and --from only when the run had a budget or a
    start model (0 is no duration --time takes, "" no model); settings no option sets follow as Python arguments.
    """
    try:
        settings = TrainConfig.from_dict({**config, **({"loss": loss} if loss else {})}).to_dict()
    except (TypeError, ValueError):  # an old or foreign training.json: no promise we cannot keep
        return ""
    start = settings["start_from"]
    reference = start_reference(start) if start else ""
    if start:
        settings["start_from"] = reference or "MODEL"  # a label of the studio's lists: what --from takes instead
    defaults = TrainConfig().to_dict()
    flags = {name: flag for name, flag in training_flags().items()
             if name not in NOT_REPEATED and not (name in UNSET_WHEN_EMPTY and not settings[name])}
    options = " ".join(f"{flag} {shlex.quote(_cell(settings[name]))}" for name, flag in flags.items() if not isinstance(settings[name], bool))
    options += "".join(f" {flag}" for name, flag in flags.items() if settings[name] is True)
    other = {k: v for k, v in settings.items() if k not in flags and k not in NOT_REPEATED and v != defaults[k]}
    line = f"\n\nTrain it again on its target: `nca train target.png -o my-copy {options}`"
    if start and reference is None:
        line += f" (MODEL: the folder of the studio's model {_cell(start)!r}, unzipped from its download)"
    if other:
        line += " with, in Python, " + ", ".join(f"`{k}={_cell(v)}`" for k, v in sorted(other.items()))
    return line + "."


def _cell(value: object) -> str:
    """A table cell that cannot break the table (or the card) whatever training.json holds."""
    return re.sub(r"[|\r\n<>]", " ", str(value))[:80]


def _quality_section(folder: Path, verdict: Verdict | None) -> str:
    if verdict is None or (verdict.score is None and not (folder / TARGET_FILE).exists()):
        return ""
    said = f"## Quality\n\n**Verdict: {verdict.sentence}.**" + (f" {verdict.advice[0].upper()}{verdict.advice[1:]}." if verdict.advice else "")
    if verdict.score is None:
        return said
    figures = verdict.score.as_dict()
    rows = "\n".join(f"| {name} | {figures[name]:.2f} |" for name in ("combined", "patches", "colour", "spectrum", "shape"))
    return (
        f"{said}\n\nMeasured on a texture {GROWN_SETTINGS}, compared with the target "
        f"(`nca_gradio.quality.score`, as `nca score` does): each figure is a distance divided by the distance between the "
        f"target's own two halves, so 1.0 means as close as the target is to itself and lower is better. "
        f"The preview shows its first {PREVIEW_STEPS} of {GROWN_STEPS:,} steps. To measure it again: `{REPEAT_LINE}`.\n\n"
        f"| statistic | ratio |\n|---|---|\n{rows}{_stability_table(folder)}"
    )


STABILITY_ROWS = (("combined_1024", "combined after 1,024 steps"), ("combined_4096", "combined after 4,096 steps"),
                  ("combined_healed", f"combined 256 steps after a circle of radius 1/4 is erased at step 1,024 (worst of {HEAL_TRIALS} heals)"),
                  ("heal_ratio", "healed / undamaged"), ("shape_1024", "shape after 1,024 steps (regions enclosed by outlines)"))


def _stability_table(folder: Path) -> str:
    """The long-rollout figures of quality.json (`quality.model_figures`), when the folder has them."""
    figures = read_json(folder, QUALITY_FILE)
    if figures is None:
        return ""
    rows = [f"| {label} | {figures[key]:.2f} |" for key, label in STABILITY_ROWS
            if isinstance(figures.get(key), (int, float)) and not isinstance(figures.get(key), bool)]
    if not rows:
        return ""
    return ("\n\nStability and healing (`quality.model_figures`: 128 x 128, float32, from "
            f"{QUALITY_FILE}):\n\n| figure | value |\n|---|---|\n" + "\n".join(rows))


def _usage_section(ref: str, where: str = "") -> str:
    """Python and `nca grow` lines that load `ref`: a Hub repo id, or a local folder path (then `where` says where to run them)."""
    intro = f"{where}\n\n" if where else ""
    return (
        f"## Usage\n\n{intro}```python\n"
        "from nca_gradio.loading import load_model\n"
        "from nca_gradio.render import grow, save_animation\n"
        f'save_animation(grow(load_model("{ref}"), size=256).frames, "texture.gif")\n'
        f"```\n\nor from the command line: `nca grow {ref} -o texture.gif`.\n\n"
        f"[`{LIVE_FILE}`]({LIVE_FILE}) runs it live in a browser, on the viewer's own GPU: download it and open it "
        "(it works offline), then drag across the texture to erase it and watch it heal."
    )


# ------------------------------------------------------------------ a shared folder


def write_card(model_folder: str | Path) -> Verdict:
    """Give a freshly trained folder its card, preview and live page, replacing those of any earlier training; its verdict.

    The texture is grown once (`grow_preview`): the verdict, the card's figure and the preview all come from that rollout.
    """
    folder = Path(model_folder)
    rollout = grow_preview(load_folder(folder))
    verdict = assess(folder, rollout)
    with scratch_folder(folder) as scratch:  # the new preview is renamed over the old: the folder always has one
        files = shared_files(folder, scratch, log=lambda message: None, new_preview=True, rollout=rollout, verdict=verdict)
        replace_files(scratch, folder, [PREVIEW_FILE])
    for name in (LIVE_FILE, CARD_FILE):  # atomically, like every file of a model folder; the card, which links the page, last
        write_bytes(folder / name, files[name])
    return verdict


def shared_files(
    model_folder: str | Path, scratch: Path, repo_id: str | None = None, log: Callable[[str], None] = lambda message: None,
    card_name: str | None = None, new_preview: bool = False, rollout: Rollout | None = None, verdict: Verdict | None = None,
) -> dict[str, Path | bytes]:
    """What sharing a model folder consists of, by name: its own files, a generated card, a preview, the live page.

    The card always replaces the folder's own README.md, which may describe an older model; a missing
    preview.gif (or any, with `new_preview`: the folder's is stale after more training) is made in `scratch`
    (and `log` told of a missing one). The model is loaded first, so a broken one fails here. Used by a push
    and by the studio's download (whose card, without a repo id, is titled `card_name`). `rollout` and `verdict`:
    the model's, grown already (`write_card`).
    """
    folder = Path(model_folder)
    model = load_folder(folder)
    needs_preview = new_preview or not (folder / PREVIEW_FILE).exists()
    if rollout is None and (needs_preview or (verdict is None and (folder / TARGET_FILE).exists())):
        rollout = grow_preview(model)  # for the preview, or to judge the model: not when both are there already
    files: dict[str, Path | bytes] = {name: folder / name for name in REQUIRED_FILES + SHARED_FILES if (folder / name).is_file()}
    files[CARD_FILE] = model_card(folder, repo_id, rollout, model, card_name, verdict).encode()
    files[LIVE_FILE] = page_html(model, repo_id or card_name or folder.name, size="auto").encode()
    if needs_preview and not new_preview:
        log(f"no {PREVIEW_FILE} in {folder}: made one (the first {PREVIEW_STEPS} steps of a texture {GROWN_SETTINGS})")
    if needs_preview:
        files[PREVIEW_FILE] = save_animation(preview_frames(rollout), scratch / PREVIEW_FILE, fps=PREVIEW_FPS)
    return files


def card_markdown(text: str) -> str:
    """A model card for display: without its YAML front matter or images that point into the repo."""
    body = re.sub(r"\A---\n.*?\n---\n", "", text, count=1, flags=re.DOTALL)
    body = re.sub(r"!\[[^\]]*\]\((?!https?://)[^)]*\)\n?", "", body)
    return re.sub(r"\n{3,}", "\n\n", body).strip()
