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
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal

import httpx2
from huggingface_hub import (
    CommitOperationAdd,
    HfApi,
    ModelCard,
    ModelCardData,
    constants,
    get_hf_file_metadata,
    get_token,
    hf_hub_download,
    hf_hub_url,
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

from .errors import UserError
from .live import page_html
from .model import NCA, PERCEPTION_ABOUT, to_rgb
from .model_folder import (
    CARD_FILE, CONFIG_FILE, LIVE_FILE, PICKLE_SUFFIXES, PREVIEW_FILE, QUALITY_FILE, REQUIRED_FILES, SHARED_FILES, TARGET_FILE,
    WEIGHTS_FILE, load_folder, read_json, read_training_log,
)
from .quality import HEAL_TRIALS, Score, score
LIBRARY_NAME = "nca-gradio"
LICENSE = "mit"
TAGS = ["neural-cellular-automata", "texture-synthesis", "pytorch"]
PREVIEW_SIZE, PREVIEW_STEPS, PREVIEW_EVERY, PREVIEW_FPS = 128, 200, 4, 25
NETWORK_ERRORS = (httpx2.TransportError, OfflineModeIsEnabled)
MAX_PULL_BYTES = 10 * 2**20  # all of a model's files together: weights are kilobytes, a bundled preview.gif about 1.4 MB
DEFAULT_TIMEOUT = 10.0  # seconds to wait for the Hub to answer; NCA_HUB_TIMEOUT changes it
Token = str | None | Literal[False]  # False: anonymous, never the machine's own token (HF_TOKEN, `hf auth login`)
_REVISION = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+/-]*")
_REPO_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*")


class HubError(UserError):
    """A Hub operation that failed, with a one-line message that says what to do (never a token)."""


@dataclass(frozen=True)
class Wording:
    """How messages tell the user to give a token or a revision: the CLI's flags, or the studio's fields."""

    token: str
    revision: str
    connection: str
    output: str = "-o"


CLI_WORDING = Wording(
    token="set HF_TOKEN or pass --token",
    revision="pass an existing branch, tag or commit as --revision",
    connection="check your connection (and HF_ENDPOINT) and try again",
)
APP_WORDING = Wording(
    token="sign in with Hugging Face, or paste a token into the Hub token box",
    revision="type an existing branch, tag or commit in Revision, or leave it empty for main",
    connection="the Hub may be down: try again in a few minutes",
    output="the output folder",
)


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


def check_revision(revision: str | None, wording: Wording = CLI_WORDING) -> str | None:
    """None (main) or a plausible branch, tag or commit; refuses "", ".." and the like before any request."""
    if revision is None:
        return None
    if not isinstance(revision, str) or not _REVISION.fullmatch(revision) or ".." in revision or "//" in revision \
            or revision.endswith(("/", ".", ".lock")) or len(revision) > 255:
        raise HubError(f"{revision!r} is not a revision: {wording.revision}")
    return revision


def resolve_token(token: Token = None) -> str | None:
    """The explicit token, else HF_TOKEN, else the one `hf auth login` stored; False: no token at all.

    The studio passes False for a visitor without a token of their own, so the server's token never serves them.
    """
    if token is False:
        return None
    return token or os.environ.get("HF_TOKEN") or get_token()


def resolve_timeout(timeout: float | None = None) -> float:
    """Seconds to wait for each Hub answer: the explicit value, else NCA_HUB_TIMEOUT, else 10."""
    if timeout is not None:
        return float(timeout)
    try:
        value = float(os.environ.get("NCA_HUB_TIMEOUT") or DEFAULT_TIMEOUT)
    except ValueError:
        raise HubError(f"NCA_HUB_TIMEOUT must be a number of seconds, got {os.environ['NCA_HUB_TIMEOUT']!r}") from None
    if not 0 < value < 3600:
        raise HubError(f"NCA_HUB_TIMEOUT must be between 0 and 3600 seconds, got {value:g}")
    return value


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


def hub_error(
    exc: Exception, repo_id: str, endpoint: str, revision: str | None = None, token: str | None = None,
    wording: Wording = CLI_WORDING, write: bool = False,
) -> HubError:
    """Turn a huggingface_hub exception into one line that says what to do. Never quotes the server or the token."""
    if isinstance(exc, LocalEntryNotFoundError) and isinstance(exc.__cause__, (HfHubHTTPError, *NETWORK_ERRORS)):
        exc = exc.__cause__  # a failed HEAD of a file: report what the Hub really answered, not "not in the cache"
    status = exc.response.status_code if isinstance(exc, HfHubHTTPError) else None
    if isinstance(exc, RevisionNotFoundError):
        return HubError(f"{repo_id} has no revision {revision or 'main'!r}: {wording.revision}")
    if isinstance(exc, EntryNotFoundError) and not isinstance(exc, LocalEntryNotFoundError):
        name = str(exc.response.url).rsplit("/", 1)[-1] if isinstance(exc, HfHubHTTPError) else "a file"
        return HubError(f"{repo_id} on {endpoint} has no {name}: is it a complete nca-gradio model?")
    if isinstance(exc, GatedRepoError):
        return HubError(f"{repo_id} is gated: ask for access on its Hub page, then {wording.token}")
    if isinstance(exc, RepositoryNotFoundError):
        if status in (401, 403) and not token:
            return HubError(f"{repo_id} was not found on {endpoint}, or it is private: {wording.token}")
        if status in (401, 403):
            return HubError(f"{repo_id} was not found on {endpoint}, or your token cannot read it: check the repo id and token")
        return HubError(f"{repo_id} was not found on {endpoint}: check the repo id (owner/name)")
    if isinstance(exc, LocalEntryNotFoundError):
        return HubError(f"cannot reach {endpoint} and {repo_id} is not in the local cache: {wording.connection}")
    if isinstance(exc, httpx2.TimeoutException):
        return HubError(f"{endpoint} did not answer within the time allowed: {wording.connection}")
    if isinstance(exc, NETWORK_ERRORS):
        return HubError(f"cannot reach {endpoint}: {wording.connection}")
    if status == 401:
        what = "was rejected" if token else "is missing"
        return HubError(f"the Hub token {what} (401): {wording.token} with a valid token")
    if status == 403:
        access = "a write token" if write else "a token that can read it"
        return HubError(f"the Hub token may not do this on {repo_id} (403): {wording.token} with {access}")
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
    token: Token = None,
    endpoint: str | None = None,
    local_dir: str | Path | None = None,
    log: Callable[[str], None] = _notice,
    wording: Wording = CLI_WORDING,
    timeout: float | None = None,
    max_bytes: int = MAX_PULL_BYTES,
) -> Path:
    """Download the files a model needs into the cache (or `local_dir`) and return that folder.

    The repo's file list, with sizes, is read first, so a pickle-only repo or one larger than
    `max_bytes` is refused before anything is downloaded. When the Hub cannot be reached, a cached
    copy is used. `token=False` pulls anonymously, whatever token the machine has.
    """
    check_repo_id(repo_id)
    revision = check_revision(revision, wording)
    endpoint, cache, timeout = resolve_endpoint(endpoint), resolve_cache_dir(cache_dir), resolve_timeout(timeout)
    token = resolve_token(token)
    if local_dir is not None:
        _check_output_folder(Path(local_dir), wording)
    api = HfApi(endpoint=endpoint, token=token or False)  # False: huggingface_hub must not add a token of its own
    try:
        info = api.model_info(repo_id, revision=revision or constants.DEFAULT_REVISION, timeout=timeout, files_metadata=True)
        listing = {s.rfilename: s.size for s in info.siblings or []}
    except httpx2.TimeoutException:
        return _pull_from_cache(repo_id, revision, cache, local_dir, f"{endpoint} did not answer within {timeout:g} s", log, wording)
    except NETWORK_ERRORS:
        return _pull_from_cache(repo_id, revision, cache, local_dir, f"cannot reach {endpoint}", log, wording)
    except HfHubHTTPError as exc:
        if exc.response.status_code >= 500:  # the Hub is down: as good as offline
            reason = f"{endpoint} answered {exc.response.status_code}"
            return _pull_from_cache(repo_id, revision, cache, local_dir, reason, log, wording)
        raise hub_error(exc, repo_id, endpoint, revision, token, wording) from None
    except (ValueError, KeyError, TypeError, AttributeError):  # 200 with HTML, or JSON of another shape
        raise HubError(f"{endpoint} did not answer like a Hub for {repo_id} (not the model listing): {wording.connection}") from None
    wanted = files_to_pull(repo_id, list(listing))
    try:
        _check_files(repo_id, {name: listing[name] for name in wanted}, api, revision, timeout, max_bytes)
        paths = [
            hf_hub_download(
                repo_id, name, revision=revision, cache_dir=cache, local_dir=local_dir, token=token or False, endpoint=endpoint,
                etag_timeout=timeout,
            )
            for name in wanted
        ]
    except (HfHubHTTPError, EntryNotFoundError, LocalEntryNotFoundError, *NETWORK_ERRORS) as exc:
        raise hub_error(exc, repo_id, endpoint, revision, token, wording) from None
    except OSError as exc:
        reason = exc.strerror or exc.__class__.__name__
        if local_dir is not None:
            raise HubError(f"cannot write {repo_id} to {local_dir} ({reason}): choose a writable folder as {wording.output}") from None
        raise HubError(f"cannot save {repo_id} in the Hub cache ({reason}): free some disk space and try again") from None
    return Path(paths[0]).parent


def _check_output_folder(folder: Path, wording: Wording) -> None:
    """Refuse an output that is a file, or lies under one, before anything is asked of the Hub."""
    if folder.exists() and not folder.is_dir():
        raise HubError(f"{folder} is a file, not a folder: choose a new or empty folder as {wording.output}")
    parent = next((p for p in folder.parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise HubError(f"{folder} lies under {parent}, which is a file: choose a folder as {wording.output}")
    if parent is not None and not folder.exists() and not os.access(parent, os.W_OK):
        raise HubError(f"cannot create {folder}: {parent} is not writable; choose another folder as {wording.output}")


def _check_files(
    repo_id: str, sizes: dict[str, int | None], api: HfApi, revision: str | None, timeout: float, max_bytes: int
) -> None:
    """Refuse a repo whose model files together exceed `max_bytes`, first by the listing's sizes, then by a HEAD of each.

    The HEADs are made without retries, so a 403 or 500 on a file is reported at once with its status
    (hf_hub_download would retry for half a minute, then blame the connection).
    """
    _refuse_if_too_large(repo_id, sum(size or 0 for size in sizes.values()), max_bytes)
    heads = [
        get_hf_file_metadata(
            hf_hub_url(repo_id, name, revision=revision, endpoint=api.endpoint), token=api.token, timeout=timeout, endpoint=api.endpoint
        )
        for name in sizes
    ]
    _refuse_if_too_large(repo_id, sum(head.size or 0 for head in heads), max_bytes)


def _refuse_if_too_large(repo_id: str, total: int, max_bytes: int) -> None:
    if total > max_bytes:
        raise HubError(
            f"{repo_id} is too large to pull ({total / 2**20:.1f} MB of model files, at most {max_bytes / 2**20:.0f} MB): "
            "an NCA model is a few kilobytes, so this is not one to load here"
        )


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
    return [f for f in REQUIRED_FILES + SHARED_FILES if f in present]


def _pull_from_cache(
    repo_id: str, revision: str | None, cache: str, local_dir: str | Path | None, reason: str, log: Callable[[str], None],
    wording: Wording = CLI_WORDING,
) -> Path:
    """The offline path, like HF_HUB_OFFLINE: the config and weights last downloaded for this revision."""
    try:
        paths = [
            hf_hub_download(repo_id, name, revision=revision, cache_dir=cache, local_dir=local_dir, local_files_only=True)
            for name in REQUIRED_FILES
        ]
    except (LocalEntryNotFoundError, EntryNotFoundError, FileNotFoundError):
        raise HubError(f"{reason} and {repo_id} is not in the local cache: {wording.connection}") from None
    log(f"{reason}: using the cached copy of {repo_id}")
    return Path(paths[0]).parent


# ------------------------------------------------------------------ model card


def grow_preview(model: NCA):
    """The small rollout a card shows and scores: 128 px, 200 steps, every 4th frame."""
    from .render import grow

    return grow(model, size=PREVIEW_SIZE, steps=PREVIEW_STEPS, every=PREVIEW_EVERY, seed=0)


SCORE_KEY = "nca_score"  # the card's combined quality figure in its metadata, so a listing (the gallery) can show it


def card_metadata(score: float | None = None) -> ModelCardData:
    """Tags and library name, by which the gallery and `nca search` find the model, and its score when measured."""
    extra = {SCORE_KEY: round(score, 2)} if score is not None else {}
    return ModelCardData(library_name=LIBRARY_NAME, license=LICENSE, tags=list(TAGS), **extra)


def model_card(
    folder: str | Path, repo_id: str | None = None, rollout=None, model: NCA | None = None, name: str | None = None
) -> str:
    """The README.md for a model folder: metadata, preview, training settings, size, quality and usage.

    `rollout` (from `grow_preview`) and `model` (the folder's, loaded) spare the work when the caller already has them.
    Without a repo id the card is for a local copy: titled `name` (default: the folder's name), and its usage
    line grows the folder of that name.
    """
    folder = Path(folder)
    model = load_folder(folder) if model is None else model
    if rollout is None and (folder / TARGET_FILE).exists():
        rollout = grow_preview(model)
    quality = _preview_score(folder, rollout)
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
        _quality_section(folder, quality),
        _usage_section(repo_id) if repo_id else _usage_section(f"./{local_name}", f"From the folder that holds `{local_name}/` (this model's files):"),
    ]
    body = "\n\n".join(s for s in sections if s) + "\n"
    metadata = card_metadata(quality.combined if isinstance(quality, Score) else None)
    text = f"---\n{metadata.to_yaml()}\n---\n\n{body}"
    _check_card(text, metadata)
    return text


def _check_card(text: str, metadata: ModelCardData) -> None:
    """Round-trip the front matter through huggingface_hub's own parser (the Hub validates it again on push)."""
    data = ModelCard(text).data.to_dict()
    if data != metadata.to_dict():
        raise HubError(f"the generated model card's metadata does not round-trip ({sorted(data)}): please report this bug")


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


def _preview_score(folder: Path, rollout) -> Score | str | None:
    """The preview's score against the target; the reason as text when it cannot be measured; None without a target."""
    if rollout is None or not (folder / TARGET_FILE).exists():
        return None
    from .images import ImageError, image_to_tensor, load_image

    try:
        return score(to_rgb(rollout.state), image_to_tensor(load_image(folder / TARGET_FILE)))
    except (ImageError, ValueError) as exc:
        return str(exc)


def _quality_section(folder: Path, quality: Score | str | None) -> str:
    if quality is None:
        return ""
    if isinstance(quality, str):
        return f"## Quality\n\nNot measured: {_cell(quality)}."
    figures = quality.as_dict()
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


# ------------------------------------------------------------------ push


def push(
    model_folder: str | Path,
    repo_id: str,
    private: bool = False,
    token: Token = None,
    endpoint: str | None = None,
    log: Callable[[str], None] = _notice,
    wording: Wording = CLI_WORDING,
) -> str:
    """Upload a model folder with a generated model card (and a preview if it has none); return the repo's URL.

    The model is loaded (and so validated) first: a broken model is never shared.
    The folder itself is left unchanged. `token=False` never uses the machine's own token.
    """
    check_repo_id(repo_id)
    endpoint, token = resolve_endpoint(endpoint), resolve_token(token)
    with tempfile.TemporaryDirectory(prefix="nca-push-") as scratch:
        files = shared_files(model_folder, Path(scratch), repo_id, log)
        operations = [
            CommitOperationAdd(path_in_repo=name, path_or_fileobj=content if isinstance(content, bytes) else str(content))
            for name, content in files.items()
        ]
        return _upload(repo_id, operations, private, token, endpoint, wording)


def write_card(model_folder: str | Path) -> None:
    """Give a freshly trained folder its card, preview and live page, replacing older ones and `save_pretrained`'s generic card."""
    from .atomic import write_bytes

    folder = Path(model_folder)
    (folder / PREVIEW_FILE).unlink(missing_ok=True)  # stale after more training: `shared_files` then grows it anew
    files = shared_files(folder, scratch=folder, log=lambda message: None)  # scratch=folder: the preview lands here
    for name in (LIVE_FILE, CARD_FILE):  # atomically, like every file of a model folder; the card, which links the page, last
        write_bytes(folder / name, files[name])


def shared_files(
    model_folder: str | Path, scratch: Path, repo_id: str | None = None, log: Callable[[str], None] = _notice,
    card_name: str | None = None,
) -> dict[str, Path | bytes]:
    """What sharing a model folder consists of, by name: its own files, a generated card, a preview, the live page.

    The card always replaces the folder's own README.md (a stale one, or the generic one
    `save_pretrained` writes); a missing preview.gif is made in `scratch`. The model is loaded
    first, so a broken one fails here. Used by a push and by the studio's download (whose card,
    without a repo id, is titled `card_name`).
    """
    from .render import save_animation

    folder = Path(model_folder)
    model = load_folder(folder)
    needs_preview = not (folder / PREVIEW_FILE).exists()
    rollout = grow_preview(model) if needs_preview or (folder / TARGET_FILE).exists() else None
    files: dict[str, Path | bytes] = {name: folder / name for name in REQUIRED_FILES + SHARED_FILES if (folder / name).is_file()}
    files[CARD_FILE] = model_card(folder, repo_id, rollout, model, card_name).encode()
    files[LIVE_FILE] = page_html(model, repo_id or card_name or folder.name, size="auto").encode()
    if needs_preview:
        log(f"no {PREVIEW_FILE} in {folder}: made one ({PREVIEW_SIZE} px, {PREVIEW_STEPS} steps)")
        files[PREVIEW_FILE] = save_animation(rollout.frames, scratch / PREVIEW_FILE, fps=PREVIEW_FPS)
    return files


def _upload(
    repo_id: str, operations: list[CommitOperationAdd], private: bool, token: str | None, endpoint: str, wording: Wording
) -> str:
    api = HfApi(endpoint=endpoint, token=token or False)  # False: huggingface_hub must not add a token of its own
    try:
        url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        if private:  # create_repo leaves an existing repo as it was: a public one would stay public
            api.update_repo_settings(repo_id, private=True, repo_type="model")
        api.create_commit(repo_id, operations, commit_message="Upload NCA model with nca-gradio", repo_type="model")
    except (HfHubHTTPError, *NETWORK_ERRORS) as exc:
        raise hub_error(exc, repo_id, endpoint, token=token, wording=wording, write=True) from None
    except ValueError as exc:  # the Hub's validate-yaml refused the card
        first = next((line.strip("- ") for line in str(exc).splitlines()[1:] if line.strip()), "invalid metadata")
        raise HubError(f"the Hub refused the model card ({_cell(_scrub(first, token))}): please report this bug") from None
    return str(url)
