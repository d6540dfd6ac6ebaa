"""Sharing models on the Hugging Face Hub: push a model folder, pull a repo, write its model card.

A pulled repo is untrusted: only the files a model needs are downloaded (never
pickles), and loading goes through `nca_gradio.loading.load_folder`, which
checks config.json and the weights. Every failure is one `HubError` line that
says what to do; no message, card or log line ever holds a token.

huggingface_hub reads HF_ENDPOINT and HF_HOME when it is imported, so the
endpoint and the cache are resolved here at call time and passed explicitly.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Callable

import httpx2
from huggingface_hub import (
    CommitOperationAdd,
    HfApi,
    ModelCard,
    ModelCardData,
    constants,
    get_token,
    hf_hub_download,
    snapshot_download,
)
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    HfHubHTTPError,
    HFValidationError,
    LocalEntryNotFoundError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import parse_ratelimit_headers, validate_repo_id

from .loading import CONFIG_FILE, PICKLE_SUFFIXES, WEIGHTS_FILE, load_folder
from .model import NCA, PERCEPTION_ABOUT, to_rgb
from .quality import HEAL_TRIALS, QUALITY_FILE
from .train import TRAINING_LOG

CARD_FILE = "README.md"
PREVIEW_FILE = "preview.gif"
TARGET_FILE = "target.png"
REQUIRED_FILES = (CONFIG_FILE, WEIGHTS_FILE)
OPTIONAL_FILES = (CARD_FILE, PREVIEW_FILE, TARGET_FILE, TRAINING_LOG, QUALITY_FILE)
LIBRARY_NAME = "nca-gradio"
LICENSE = "mit"
TAGS = ["neural-cellular-automata", "texture-synthesis", "pytorch"]
PREVIEW_SIZE, PREVIEW_STEPS, PREVIEW_EVERY, PREVIEW_FPS = 128, 200, 4, 25
NETWORK_ERRORS = (httpx2.TransportError, OfflineModeIsEnabled)
_REPO_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*")


class HubError(Exception):
    """A Hub operation that failed, with a one-line message that says what to do (never a token)."""


def _notice(message: str) -> None:
    print(f"nca: {message}", file=sys.stderr)


# ------------------------------------------------------------------ settings


def is_repo_id(ref: str) -> bool:
    """True for `owner/name`: the shape that `load_model` treats as a Hub repo rather than a folder."""
    if not _REPO_ID.fullmatch(ref) or ".." in ref or "--" in ref:
        return False
    try:
        validate_repo_id(ref)
    except HFValidationError:
        return False
    return True


def check_repo_id(repo_id: str) -> str:
    if not isinstance(repo_id, str) or not is_repo_id(repo_id):
        raise HubError(f"{repo_id!r} is not a Hub repo id: use owner/name (letters, digits, '-', '_', '.')")
    return repo_id


def resolve_endpoint(endpoint: str | None = None) -> str:
    """The explicit endpoint, else HF_ENDPOINT as set now (not at import), else huggingface.co."""
    return (endpoint or os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


def resolve_token(token: str | None = None) -> str | None:
    """The explicit token, else HF_TOKEN, else the one `hf auth login` stored."""
    return token or os.environ.get("HF_TOKEN") or get_token()


def resolve_cache_dir(cache_dir: str | Path | None = None) -> str:
    """The explicit cache, else HF_HUB_CACHE or HF_HOME as set now, else huggingface_hub's default."""
    if cache_dir is not None:
        return str(cache_dir)
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    if os.environ.get("HF_HOME"):
        return os.path.join(os.environ["HF_HOME"], "hub")
    return constants.HF_HUB_CACHE


# ------------------------------------------------------------------ errors


def hub_error(exc: Exception, repo_id: str, endpoint: str, revision: str | None = None, token: str | None = None) -> HubError:
    """Turn a huggingface_hub exception into one line that says what to do. Never quotes the server or the token."""
    status = exc.response.status_code if isinstance(exc, HfHubHTTPError) else None
    if isinstance(exc, RevisionNotFoundError):
        return HubError(f"{repo_id} has no revision {revision or 'main'!r}: pass an existing branch, tag or commit as --revision")
    if isinstance(exc, EntryNotFoundError) and not isinstance(exc, LocalEntryNotFoundError):
        name = str(exc.response.url).rsplit("/", 1)[-1] if isinstance(exc, HfHubHTTPError) else "a file"
        return HubError(f"{repo_id} on {endpoint} has no {name}: is it a complete nca-gradio model?")
    if isinstance(exc, GatedRepoError):
        return HubError(f"{repo_id} is gated: ask for access on its Hub page, then set HF_TOKEN or pass --token")
    if isinstance(exc, RepositoryNotFoundError):
        if status in (401, 403) and not token:
            return HubError(f"{repo_id} was not found on {endpoint}, or it is private: set HF_TOKEN or pass --token")
        if status in (401, 403):
            return HubError(f"{repo_id} was not found on {endpoint}, or your token cannot read it: check the repo id and token")
        return HubError(f"{repo_id} was not found on {endpoint}: check the repo id (owner/name)")
    if isinstance(exc, LocalEntryNotFoundError):
        return HubError(f"cannot reach {endpoint} and {repo_id} is not in the local cache: check your connection and try again")
    if isinstance(exc, NETWORK_ERRORS):
        return HubError(f"cannot reach {endpoint}: check your connection (and HF_ENDPOINT) and try again")
    if status == 401:
        what = "was rejected" if token else "is missing"
        return HubError(f"the Hub token {what} (401): set HF_TOKEN or pass --token with a valid token")
    if status == 403:
        return HubError(f"the Hub token may not do this on {repo_id} (403): set HF_TOKEN or pass --token with a write token")
    if status == 429:
        limit = parse_ratelimit_headers(exc.response.headers)
        wait = f"wait {limit.reset_in_seconds} s" if limit is not None else "wait a few minutes"
        return HubError(f"{endpoint} is rate limiting requests (429): {wait} and try again")
    if status is not None and status >= 500:
        return HubError(f"{endpoint} answered {status} (a server problem): try again later")
    if status is not None:
        return HubError(f"{endpoint} refused the request for {repo_id} ({status}): check the repo id and your token")
    return HubError(f"Hub request for {repo_id} failed ({exc.__class__.__name__}): try again")


# ------------------------------------------------------------------ pull


def pull(
    repo_id: str,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
    token: str | None = None,
    endpoint: str | None = None,
    local_dir: str | Path | None = None,
    log: Callable[[str], None] = _notice,
) -> Path:
    """Download the files a model needs into the cache (or `local_dir`) and return that folder.

    The repo's file list is read first, so a pickle-only repo is refused before
    anything is downloaded. When the Hub cannot be reached, a cached copy is used.
    """
    check_repo_id(repo_id)
    endpoint, token, cache = resolve_endpoint(endpoint), resolve_token(token), resolve_cache_dir(cache_dir)
    try:
        info = HfApi(endpoint=endpoint, token=token).model_info(repo_id, revision=revision or constants.DEFAULT_REVISION)
    except NETWORK_ERRORS:
        return _pull_from_cache(repo_id, revision, cache, local_dir, f"cannot reach {endpoint}", log)
    except HfHubHTTPError as exc:
        if exc.response.status_code >= 500:  # the Hub is down: as good as offline
            return _pull_from_cache(repo_id, revision, cache, local_dir, f"{endpoint} answered {exc.response.status_code}", log)
        raise hub_error(exc, repo_id, endpoint, revision, token) from None
    wanted = files_to_pull(repo_id, [s.rfilename for s in info.siblings or []])
    try:
        folder = snapshot_download(
            repo_id, revision=revision, cache_dir=cache, local_dir=local_dir, token=token, endpoint=endpoint,
            allow_patterns=wanted,
        )
    except (HfHubHTTPError, EntryNotFoundError, *NETWORK_ERRORS) as exc:
        raise hub_error(exc, repo_id, endpoint, revision, token) from None
    return Path(folder)


def files_to_pull(repo_id: str, files: list[str]) -> list[str]:
    """The model's files in a repo listing; refuses a repo without safetensors weights or a config."""
    present = set(files)
    if WEIGHTS_FILE not in present:
        pickles = sorted(f for f in present if f.lower().endswith(PICKLE_SUFFIXES))
        if pickles:
            raise HubError(
                f"{repo_id} has only pickle weights ({', '.join(pickles)}), which are unsafe to load: ask its author for {WEIGHTS_FILE}"
            )
        raise HubError(f"{repo_id} has no {WEIGHTS_FILE}: is it an nca-gradio model?")
    if CONFIG_FILE not in present:
        raise HubError(f"{repo_id} has no {CONFIG_FILE}: is it an nca-gradio model?")
    return [f for f in REQUIRED_FILES + OPTIONAL_FILES if f in present]


def _pull_from_cache(
    repo_id: str, revision: str | None, cache: str, local_dir: str | Path | None, reason: str, log: Callable[[str], None]
) -> Path:
    """The offline path, like HF_HUB_OFFLINE: the config and weights last downloaded for this revision."""
    try:
        paths = [
            hf_hub_download(repo_id, name, revision=revision, cache_dir=cache, local_dir=local_dir, local_files_only=True)
            for name in REQUIRED_FILES
        ]
    except (LocalEntryNotFoundError, EntryNotFoundError, FileNotFoundError):
        raise HubError(f"{reason} and {repo_id} is not in the local cache: check your connection and try again") from None
    log(f"{reason}: using the cached copy of {repo_id}")
    return Path(paths[0]).parent


# ------------------------------------------------------------------ model card


def grow_preview(model: NCA):
    """The small rollout a card shows and scores: 128 px, 200 steps, every 4th frame."""
    from .render import grow

    return grow(model, size=PREVIEW_SIZE, steps=PREVIEW_STEPS, every=PREVIEW_EVERY, seed=0)


def card_metadata() -> ModelCardData:
    return ModelCardData(library_name=LIBRARY_NAME, license=LICENSE, tags=list(TAGS))


def model_card(folder: str | Path, repo_id: str | None = None, rollout=None, model: NCA | None = None) -> str:
    """The README.md for a model folder: metadata, preview, training settings, size, quality and usage.

    `rollout` (from `grow_preview`) and `model` (the folder's, loaded) spare the work when the caller already has them.
    """
    folder = Path(folder)
    model = load_folder(folder) if model is None else model
    if rollout is None and (folder / TARGET_FILE).exists():
        rollout = grow_preview(model)
    ref = repo_id or "OWNER/NAME"
    sections = [
        f"# {ref.split('/')[-1]}\n\nA Neural Cellular Automaton that grows a texture from an empty grid, "
        f"made with [nca-gradio](https://github.com/nca-gradio/nca-gradio). Every cell looks at its 3x3 neighbourhood "
        f"and updates itself; the grid is a torus, so the texture tiles and can be grown at any size.",
        f"![growing]({PREVIEW_FILE})",
        _target_section(folder),
        _model_section(model),
        _training_section(folder),
        _quality_section(folder, rollout),
        _usage_section(ref),
    ]
    body = "\n\n".join(s for s in sections if s) + "\n"
    text = f"---\n{card_metadata().to_yaml()}\n---\n\n{body}"
    _check_card(text)
    return text


def _check_card(text: str) -> None:
    """Round-trip the front matter through huggingface_hub's own parser (the Hub validates it again on push)."""
    data = ModelCard(text).data.to_dict()
    if data != card_metadata().to_dict():
        raise HubError(f"the generated model card's metadata does not round-trip ({sorted(data)}): please report this bug")


def _target_section(folder: Path) -> str:
    return f"Target texture:\n\n![target]({TARGET_FILE})" if (folder / TARGET_FILE).exists() else ""


def _model_section(model: NCA) -> str:
    return (
        f"## Model\n\n{model.num_parameters:,} parameters: {model.channels} channels, {model.hidden} hidden units, "
        f"cells fire with probability {model.fire_rate}; each cell sees its neighbourhood through {PERCEPTION_ABOUT[model.perception]}."
    )


def read_training_log(folder: Path) -> dict | None:
    """training.json as the trainer wrote it, or None when it is missing or unreadable (it is only shown)."""
    try:
        info = json.loads((folder / TRAINING_LOG).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return info if isinstance(info, dict) and isinstance(info.get("config", {}), dict) else None


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
    return f"## Training\n\n| setting | value |\n|---|---|\n{table}" + _reproduce_line({**config, "precision": trained_precision(info)}, info.get("loss"))


def trained_precision(info: dict) -> str:
    """The dtype the rollouts really ran in; logs older than the precision setting trained in bfloat16 on CUDA only."""
    recorded = info.get("precision")
    if recorded in ("float32", "bfloat16"):
        return recorded
    return "bfloat16" if str(info.get("device", "")).startswith("cuda") else "float32"


CLI_TRAIN_FLAGS = {"preset": "--preset", "perception": "--perception", "loss": "--loss", "match_weight": "--match", "damage_every": "--damage-every", "iters": "--iters", "size": "--size",
                   "target_size": "--target-size", "batch": "--batch", "pool_size": "--pool-size", "lr": "--lr",
                   "seed": "--seed", "precision": "--precision"}


def _reproduce_line(config: dict, loss: str | None) -> str:
    """The `nca train` command that runs this model's training again: its settings, seed and loss."""
    from .train import TrainConfig

    try:
        settings = TrainConfig.from_dict({**config, **({"loss": loss} if loss else {})}).to_dict()
    except (TypeError, ValueError):  # an old or foreign training.json: no promise we cannot keep
        return ""
    defaults = TrainConfig().to_dict()
    flags = " ".join(f"{flag} {_cell(settings[key])}" for key, flag in CLI_TRAIN_FLAGS.items())
    if settings["grad_checkpoint"]:
        flags += " --grad-checkpoint"
    other = {k: v for k, v in settings.items()
             if k not in CLI_TRAIN_FLAGS and k not in ("device", "grad_checkpoint") and v != defaults[k]}
    line = f"\n\nTrain it again on its target: `nca train target.png -o my-copy {flags}`"
    if other:
        line += " with, in Python, " + ", ".join(f"`{k}={_cell(v)}`" for k, v in sorted(other.items()))
    return line + "."


def _scrub(text: str, token: str | None) -> str:
    """Server text with any echo of the token removed, before it goes into a message."""
    return text.replace(token, "***") if token else text


def _cell(value: object) -> str:
    """A table cell that cannot break the table (or the card) whatever training.json holds."""
    return re.sub(r"[|\r\n<>]", " ", str(value))[:80]


def _quality_section(folder: Path, rollout) -> str:
    if rollout is None or not (folder / TARGET_FILE).exists():
        return ""
    from .images import ImageError, image_to_tensor, load_image
    from .quality import score

    try:
        result = score(to_rgb(rollout.state), image_to_tensor(load_image(folder / TARGET_FILE)))
    except (ImageError, ValueError) as exc:
        return f"## Quality\n\nNot measured: {_cell(exc)}."
    figures = result.as_dict()
    rows = "\n".join(f"| {name} | {figures[name]:.2f} |" for name in ("combined", "patches", "colour", "spectrum"))
    return (
        f"## Quality\n\nA {PREVIEW_SIZE} x {PREVIEW_SIZE} texture grown for {PREVIEW_STEPS} steps, compared with the target "
        f"(`nca_gradio.quality.score`): each figure is a distance divided by the distance between the target's own two "
        f"halves, so 1.0 means as close as the target is to itself and lower is better.\n\n"
        f"| statistic | ratio |\n|---|---|\n{rows}{_stability_table(folder)}"
    )


STABILITY_ROWS = (("combined_1024", "combined after 1,024 steps"), ("combined_4096", "combined after 4,096 steps"),
                  ("combined_healed", f"combined 256 steps after a circle of radius 1/4 is erased at step 1,024 (worst of {HEAL_TRIALS} heals)"),
                  ("heal_ratio", "healed / undamaged"))


def _stability_table(folder: Path) -> str:
    """The long-rollout figures of quality.json (`quality.model_figures`), when the folder has them."""
    try:
        figures = json.loads((folder / QUALITY_FILE).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return ""
    if not isinstance(figures, dict):
        return ""
    rows = [f"| {label} | {figures[key]:.2f} |" for key, label in STABILITY_ROWS
            if isinstance(figures.get(key), (int, float)) and not isinstance(figures.get(key), bool)]
    if not rows:
        return ""
    return ("\n\nStability and healing (`quality.model_figures`: 128 x 128, float32, from "
            f"{QUALITY_FILE}):\n\n| figure | value |\n|---|---|\n" + "\n".join(rows))


def _usage_section(ref: str) -> str:
    return (
        "## Usage\n\n```python\n"
        "from nca_gradio.loading import load_model\n"
        "from nca_gradio.render import grow, save_animation\n"
        f'save_animation(grow(load_model("{ref}"), size=256).frames, "texture.gif")\n'
        f"```\n\nor from the command line: `nca grow {ref} -o texture.gif`"
    )


# ------------------------------------------------------------------ push


def push(
    model_folder: str | Path,
    repo_id: str,
    private: bool = False,
    token: str | None = None,
    endpoint: str | None = None,
    log: Callable[[str], None] = _notice,
) -> str:
    """Upload a model folder with a generated model card (and a preview if it has none); return the repo's URL.

    The model is loaded (and so validated) first: a broken model is never shared.
    The folder itself is left unchanged.
    """
    check_repo_id(repo_id)
    endpoint, token = resolve_endpoint(endpoint), resolve_token(token)
    with tempfile.TemporaryDirectory(prefix="nca-push-") as scratch:
        files = shared_files(model_folder, Path(scratch), repo_id, log)
        operations = [
            CommitOperationAdd(path_in_repo=name, path_or_fileobj=content if isinstance(content, bytes) else str(content))
            for name, content in files.items()
        ]
        return _upload(repo_id, operations, private, token, endpoint)


def write_card(model_folder: str | Path) -> None:
    """Give a freshly trained folder its card and preview, replacing older ones and `save_pretrained`'s generic card."""
    from .atomic import write_bytes

    folder = Path(model_folder)
    (folder / PREVIEW_FILE).unlink(missing_ok=True)  # stale after more training: `shared_files` then grows it anew
    card = shared_files(folder, scratch=folder, log=lambda message: None)[CARD_FILE]  # scratch=folder: the preview lands here
    write_bytes(folder / CARD_FILE, card)  # atomically, like every file of a model folder


def shared_files(
    model_folder: str | Path, scratch: Path, repo_id: str | None = None, log: Callable[[str], None] = _notice
) -> dict[str, Path | bytes]:
    """What sharing a model folder consists of, by name: its own files, a generated card, a preview.

    The card always replaces the folder's own README.md (a stale one, or the generic one
    `save_pretrained` writes); a missing preview.gif is made in `scratch`. The model is loaded
    first, so a broken one fails here. Used by a push and by the studio's download.
    """
    from .render import save_animation

    folder = Path(model_folder)
    model = load_folder(folder)
    needs_preview = not (folder / PREVIEW_FILE).exists()
    rollout = grow_preview(model) if needs_preview or (folder / TARGET_FILE).exists() else None
    files: dict[str, Path | bytes] = {name: folder / name for name in REQUIRED_FILES + OPTIONAL_FILES if (folder / name).is_file()}
    files[CARD_FILE] = model_card(folder, repo_id, rollout, model).encode()
    if needs_preview:
        log(f"no {PREVIEW_FILE} in {folder}: made one ({PREVIEW_SIZE} px, {PREVIEW_STEPS} steps)")
        files[PREVIEW_FILE] = save_animation(rollout.frames, scratch / PREVIEW_FILE, fps=PREVIEW_FPS)
    return files


def _upload(repo_id: str, operations: list[CommitOperationAdd], private: bool, token: str | None, endpoint: str) -> str:
    api = HfApi(endpoint=endpoint, token=token)
    try:
        url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        if private:  # create_repo leaves an existing repo as it was: a public one would stay public
            api.update_repo_settings(repo_id, private=True, repo_type="model")
        api.create_commit(repo_id, operations, commit_message="Upload NCA model with nca-gradio", repo_type="model")
    except (HfHubHTTPError, *NETWORK_ERRORS) as exc:
        raise hub_error(exc, repo_id, endpoint, token=token) from None
    except ValueError as exc:  # the Hub's validate-yaml refused the card
        first = next((line.strip("- ") for line in str(exc).splitlines()[1:] if line.strip()), "invalid metadata")
        raise HubError(f"the Hub refused the model card ({_cell(_scrub(first, token))}): please report this bug") from None
    return str(url)
