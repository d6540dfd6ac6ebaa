"""The Hugging Face Hub client: push a model folder with its card (`card.shared_files`), pull a repo.

A pulled repo is untrusted: only the files a model needs are downloaded (never
pickles), and loading goes through `model_folder.load_folder`, which checks
config.json and the weights. Every failure is one `HubError` line that says
what to do; no message or log line ever holds a token.

huggingface_hub reads HF_ENDPOINT and HF_HOME when it is imported, so the
endpoint and the cache are resolved here at call time and passed explicitly.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import httpx2
from huggingface_hub import (
    CommitOperationAdd,
    HfApi,
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

from .atomic import check_folder
from .card import shared_files
from .errors import UserError
from .model_folder import CONFIG_FILE, PICKLE_SUFFIXES, REQUIRED_FILES, SHARED_FILES, WEIGHTS_FILE

NETWORK_ERRORS = (httpx2.TransportError, OfflineModeIsEnabled)
MAX_PULL_BYTES = 10 * 2**20  # all of a model's files together: weights are kilobytes, a bundled preview.gif about 1.4 MB
DEFAULT_TIMEOUT = 10.0  # seconds to wait for the Hub to answer; NCA_HUB_TIMEOUT changes it
Token = str | None | Literal[False]  # False: anonymous, never the machine's own token (HF_TOKEN, `hf auth login`)
_REVISION = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+/-]*")
_REPO_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*")
_COMMIT_SHA = re.compile(r"[0-9a-f]{40}")
# What a terminal or a page must never get from the Hub: ESC sequences (CSI, OSC ... BEL/ST, two-character),
# C0 and C1 controls, and the bidi controls that make text read other than it is stored.
_ESCAPE_SEQUENCE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-_]|\x9b[0-?]*[ -/]*[@-~]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


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


def is_commit_sha(revision: object) -> bool:
    """True only for a full commit hash (40 lowercase hex): the one revision form that is safe as a file name."""
    return isinstance(revision, str) and _COMMIT_SHA.fullmatch(revision) is not None


def inside(folder: Path, *parts: str) -> Path:
    """`folder/parts...`, refused unless it resolves to a place inside `folder` (no "..", no absolute part, no link out)."""
    root = folder.resolve()
    path = root.joinpath(*parts).resolve()
    if path == root or not path.is_relative_to(root):
        raise HubError(f"refused to write outside {root}: the Hub named a path that leaves it")
    return path


def plain_text(text: object, limit: int = 200) -> str:
    """Hub text fit for a terminal or a caption: no escape sequences, control or bidi characters; `limit` characters at most."""
    return _CONTROL.sub("", _ESCAPE_SEQUENCE.sub("", str(text)))[:limit]


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
        local_dir = _check_output_folder(local_dir, wording)
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


def _check_output_folder(local_dir: str | Path, wording: Wording) -> Path:
    """Refuse an empty output, one that is a file or lies under one (`atomic.check_folder`), or one that cannot be
    made, before anything is asked of the Hub."""
    folder = check_folder(local_dir, f"a new or empty folder as {wording.output}")
    parent = next((p for p in folder.parents if p.exists()), None)
    if parent is not None and not folder.exists() and not os.access(parent, os.W_OK):
        raise HubError(f"cannot create {folder}: {parent} is not writable; choose another folder as {wording.output}")
    return folder


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


# ------------------------------------------------------------------ push


def within(timeout: float, endpoint: str, wording: Wording, call: Callable, *args, **kwargs):
    """`call(*args, **kwargs)`, abandoned after `timeout` seconds with one HubError line.

    huggingface_hub 2.4 gives create_repo, update_repo_settings and create_commit no timeout (its shared
    httpx client waits forever, and retries), so the call runs in a daemon thread that is left behind
    if the Hub never answers; it ends with the process or when the connection drops.
    """
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["value"] = call(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 (handed to the caller's thread, which reports it)
            outcome["error"] = exc

    worker = threading.Thread(target=run, name="nca-hub-call", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise HubError(f"the Hub did not answer in {timeout:g} s ({endpoint}): {wording.connection}")
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def push(
    model_folder: str | Path,
    repo_id: str,
    private: bool = False,
    token: Token = None,
    endpoint: str | None = None,
    log: Callable[[str], None] = _notice,
    wording: Wording = CLI_WORDING,
    timeout: float | None = None,
) -> str:
    """Upload a model folder with a generated model card (and a preview if it has none); return the repo's URL.

    The model is loaded (and so validated) first: a broken model is never shared.
    The folder itself is left unchanged. `token=False` never uses the machine's own token.
    Each Hub call is given `timeout` seconds (NCA_HUB_TIMEOUT, else 10) to finish.
    """
    check_repo_id(repo_id)
    endpoint, token, timeout = resolve_endpoint(endpoint), resolve_token(token), resolve_timeout(timeout)
    with tempfile.TemporaryDirectory(prefix="nca-push-") as scratch:
        files = shared_files(model_folder, Path(scratch), repo_id, log)
        operations = [
            CommitOperationAdd(path_in_repo=name, path_or_fileobj=content if isinstance(content, bytes) else str(content))
            for name, content in files.items()
        ]
        return _upload(repo_id, operations, private, token, endpoint, wording, timeout)


SLOWEST_UPLOAD = 50_000  # bytes a second: a commit may take this long to send its files on top of the answer timeout


def upload_seconds(timeout: float, operations: list[CommitOperationAdd]) -> float:
    """The commit's limit: the answer timeout plus the files at `SLOWEST_UPLOAD`, so a slow link still shares a model."""
    size = sum(len(op.path_or_fileobj) if isinstance(op.path_or_fileobj, bytes) else Path(op.path_or_fileobj).stat().st_size
               for op in operations)
    return timeout + size / SLOWEST_UPLOAD


def _upload(
    repo_id: str, operations: list[CommitOperationAdd], private: bool, token: str | None, endpoint: str, wording: Wording,
    timeout: float,
) -> str:
    api = HfApi(endpoint=endpoint, token=token or False)  # False: huggingface_hub must not add a token of its own
    try:
        url = within(timeout, endpoint, wording, api.create_repo, repo_id, private=private, exist_ok=True, repo_type="model")
        if private:  # create_repo leaves an existing repo as it was: a public one would stay public
            within(timeout, endpoint, wording, api.update_repo_settings, repo_id, private=True, repo_type="model")
        within(upload_seconds(timeout, operations), endpoint, wording, api.create_commit, repo_id, operations,
               commit_message="Upload NCA model with nca-gradio", repo_type="model")
    except (HfHubHTTPError, *NETWORK_ERRORS) as exc:
        raise hub_error(exc, repo_id, endpoint, token=token, wording=wording, write=True) from None
    except ValueError as exc:  # the Hub's validate-yaml refused the card
        first = next((line.strip("- ") for line in str(exc).splitlines()[1:] if line.strip()), "invalid metadata")
        raise HubError(f"the Hub refused the model card ({_quote(first, token)}): please report this bug") from None
    return str(url)


def _quote(text: str, token: str | None) -> str:
    """Server text fit for a one-line message: any echo of the token removed, no line breaks or markup, 80 characters at most."""
    text = text.replace(token, "***") if token else text
    return re.sub(r"[|\r\n<>]", " ", text)[:80]
