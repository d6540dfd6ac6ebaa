"""Finding models others shared: NCA models on the Hub, a page at a time, with their previews.

A model is found by our tag or by our library name (older pushes carry only the
latter). Listing is anonymous: the gallery shows public models, whatever token the
machine or a visitor has. Previews are fetched on demand, size-capped, and kept for
the life of the process.
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from pathlib import Path

from huggingface_hub import ModelInfo, get_hf_file_metadata, get_session, hf_hub_url
from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError
from huggingface_hub.utils import hf_raise_for_status

from .atomic import SaveError, write_bytes
from .card import LIBRARY_NAME, SCORE_KEY, TAGS
from .hub import NETWORK_ERRORS, HubError, resolve_endpoint, resolve_timeout
from .model_folder import PREVIEW_FILE

TAG = TAGS[0]
SORTS = {"downloads": "downloads", "likes": "likes", "recent": "created_at"}  # what a user asks for: the Hub's sort key
PAGE_SIZE = 12
MAX_PREVIEW_BYTES = 4 * 2**20  # a bundled preview.gif is about 1.4 MB


@dataclass(frozen=True)
class SharedModel:
    """One model as the Hub lists it; `score` is its card's quality figure (1.0 = its target's own floor), if any."""

    repo_id: str
    author: str
    downloads: int
    likes: int
    created: datetime | None
    modified: datetime | None
    score: float | None
    sha: str | None

    @property
    def name(self) -> str:
        return self.repo_id.split("/", 1)[1]

    def caption(self) -> str:
        score = f" · score {self.score:.2f}" if self.score is not None else ""
        return f"{self.name} by {self.author} · {self.downloads:,} downloads · {self.likes:,} likes{score}"


def _score(card_data: object) -> float | None:
    value = card_data.get(SCORE_KEY) if hasattr(card_data, "get") else None
    try:
        score = float(value) if value is not None else None
    except (TypeError, ValueError):
        return None
    return score if score is not None and score >= 0 else None


def _shared(info) -> SharedModel:
    return SharedModel(
        repo_id=info.id, author=info.author or info.id.split("/", 1)[0], downloads=info.downloads or 0, likes=info.likes or 0,
        created=info.created_at, modified=info.last_modified, score=_score(info.card_data), sha=info.sha,
    )


def _order(sort: str):
    attribute = {"downloads": "downloads", "likes": "likes", "recent": "created"}[sort]
    return lambda model: (getattr(model, attribute) is not None, getattr(model, attribute) or 0)


def _listing(endpoint: str, tag: str, text: str, sort: str, limit: int, timeout: float) -> Iterator[dict]:
    """The Hub's /api/models for one tag, page after page (its Link headers) only as far as the caller reads.

    Anonymous, and with no retries: a Hub that is down is reported at once (huggingface_hub's
    `list_models` retries for half a minute and cannot be told to send no token).
    """
    params = {"filter": tag, "sort": "createdAt" if sort == "created_at" else sort, "direction": -1, "limit": limit,
              "full": True, "cardData": True, **({"search": text} if text else {})}
    url: str | None = f"{endpoint}/api/models"
    while url is not None:
        response = get_session().get(url, params=params, timeout=timeout)
        hf_raise_for_status(response)
        yield from response.json()
        url, params = response.links.get("next", {}).get("url"), None  # the next link carries its own query


def search(
    text: str = "", sort: str = "downloads", limit: int = PAGE_SIZE, offset: int = 0,
    endpoint: str | None = None, timeout: float | None = None,
) -> list[SharedModel]:
    """Models tagged `neural-cellular-automata` or made by this library, best first by `sort`; `limit` of them from `offset`.

    Only the pages up to `offset + limit` are fetched from each of the two listings, never everything.
    """
    if sort not in SORTS:
        raise HubError(f"sort must be one of {', '.join(SORTS)}, got {sort!r}")
    if not 1 <= limit <= 1000 or offset < 0:
        raise HubError(f"limit must be between 1 and 1000 (got {limit}) and offset at least 0 (got {offset})")
    endpoint, timeout = resolve_endpoint(endpoint), resolve_timeout(timeout)
    wanted = offset + limit
    found: dict[str, SharedModel] = {}
    try:
        for tag in (TAG, LIBRARY_NAME):
            for item in islice(_listing(endpoint, tag, text.strip(), SORTS[sort], wanted, timeout), wanted):
                found.setdefault(item["id"], _shared(ModelInfo(**{"siblings": None, **item})))
    except HfHubHTTPError as exc:
        raise HubError(f"{endpoint} refused the model listing ({exc.response.status_code}): try again later") from None
    except NETWORK_ERRORS:
        raise HubError(f"cannot reach {endpoint}: the gallery needs the Hub; everything else works offline") from None
    except (ValueError, KeyError, TypeError, AttributeError):
        raise HubError(f"{endpoint} did not answer like a Hub (not a model listing): try again later") from None
    ranked = sorted(found.values(), key=_order(sort), reverse=True)
    return ranked[offset:wanted]


_previews: dict[tuple[str, str, str | None], Path | None] = {}
_previews_lock = threading.Lock()
_preview_dir = Path(tempfile.gettempdir()) / "nca-gallery"


def preview(model: SharedModel, endpoint: str | None = None, timeout: float | None = None,
            max_bytes: int = MAX_PREVIEW_BYTES) -> Path | None:
    """The model's preview.gif on disk, or None when it has none, it is too large, or the Hub fails; cached per process.

    The size is read from a HEAD first, so a large file is never downloaded.
    """
    endpoint, timeout = resolve_endpoint(endpoint), resolve_timeout(timeout)
    key = (endpoint, model.repo_id, model.sha)
    with _previews_lock:
        if key in _previews:
            return _previews[key]
    revision = model.sha or "main"
    try:
        url = hf_hub_url(model.repo_id, PREVIEW_FILE, revision=revision, endpoint=endpoint)
        size = get_hf_file_metadata(url, token=False, timeout=timeout, endpoint=endpoint).size
        path = None
        if size is not None and size <= max_bytes:
            response = get_session().get(url, timeout=timeout, follow_redirects=True)  # no retries: a card can do without
            hf_raise_for_status(response)
            if len(response.content) <= max_bytes:
                path = _preview_dir / model.repo_id.replace("/", "--") / f"{revision}.gif"
                path.parent.mkdir(parents=True, exist_ok=True)
                write_bytes(path, response.content)  # whole or not at all, even with two sessions fetching it at once
    except (HfHubHTTPError, EntryNotFoundError, OSError, SaveError, *NETWORK_ERRORS):
        return None  # a card without a picture: not worth an error, and not cached, so a later page can try again
    with _previews_lock:
        _previews[key] = path
    return path


def placeholder() -> Path:
    """A plain tile shown while a preview loads, or for a model without one."""
    path = _preview_dir / "placeholder.png"
    if not path.exists():
        from PIL import Image

        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (64, 64), (200, 200, 205)).save(path)
    return path


def previews(models: list[SharedModel], endpoint: str | None = None, workers: int = 8) -> list[Path | None]:
    """Previews of a page of models, fetched side by side."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda model: preview(model, endpoint), models))


def table(models: list[SharedModel]) -> str:
    """The plain-text table `nca search` prints: one model a line, ids that `nca pull` and `nca grow` take."""
    rows = [("repo id", "author", "downloads", "likes", "last modified", "score")]
    for m in models:
        modified = m.modified.strftime("%Y-%m-%d") if m.modified else "-"
        rows.append((m.repo_id, m.author, f"{m.downloads:,}", f"{m.likes:,}", modified, f"{m.score:.2f}" if m.score is not None else "-"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    align = ("<", "<", ">", ">", "<", ">")
    return "\n".join("  ".join(f"{cell:{a}{w}}" for cell, a, w in zip(row, align, widths)).rstrip() for row in rows)
