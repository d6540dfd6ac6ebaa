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
from pathlib import Path

import httpx2
from huggingface_hub import get_hf_file_metadata, get_session, hf_hub_url
from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, HFValidationError
from huggingface_hub.utils import hf_raise_for_status

from .atomic import SaveError, write_bytes
from .card import LIBRARY_NAME, SCORE_KEY, TAGS
from .hub import NETWORK_ERRORS, HubError, inside, is_commit_sha, is_repo_id, plain_text, resolve_endpoint, resolve_timeout
from .model_folder import PREVIEW_FILE

TAG = TAGS[0]
SORTS = {"downloads": "downloads", "likes": "likes", "recent": "created_at"}  # what a user asks for: the Hub's sort key
PAGE_SIZE = 12
MAX_PREVIEW_BYTES = 4 * 2**20  # a bundled preview.gif is about 1.4 MB
MAX_PAGES = 20  # pages read from one listing, whatever its Link headers say
MAX_ENTRIES = 5000  # entries read from one listing, good or bad
CHUNK = 64 * 2**10  # bytes a preview is read in


@dataclass(frozen=True)
class SharedModel:
    """One model as the Hub lists it; `score` is its card's quality figure (1.0 = its target's own floor), if any.

    `repo_id` is a valid owner/name and `sha` a full commit hash or None: `parse_entry` checks both.
    """

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
        return self.repo_id.split("/", 1)[-1]

    def caption(self) -> str:
        """One line under a gallery picture; the author is Hub text, so it is cleaned of control characters."""
        score = f" · score {self.score:.2f}" if self.score is not None else ""
        return f"{self.name} by {plain_text(self.author, 60)} · {self.downloads:,} downloads · {self.likes:,} likes{score}"


@dataclass(frozen=True)
class Found:
    """A page of search results, and how many listing entries were skipped because they were not valid models."""

    models: list[SharedModel]
    skipped: int = 0

    def skipped_note(self) -> str:
        """A sentence for the user when entries were skipped, else ""."""
        if not self.skipped:
            return ""
        entries = "entry" if self.skipped == 1 else "entries"
        return f"{self.skipped} Hub listing {entries} skipped: not valid models."


def _score(card_data: object) -> float | None:
    value = card_data.get(SCORE_KEY) if isinstance(card_data, dict) else None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        score = float(value)
    except ValueError:
        return None
    return score if 0 <= score < float("inf") else None


def _count(value: object) -> int:
    """A download or like count: a whole number of at least 0 (a missing one is 0); anything else is a bad entry."""
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"not a count: {value!r}")
    return value


def _when(value: object) -> datetime | None:
    """An ISO date from the listing, or None when it is missing or not a date (a display detail, not worth skipping for)."""
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def parse_entry(item: object) -> SharedModel:
    """One /api/models entry as a SharedModel; ValueError for an entry that is not a valid model (bad id, counts, sha)."""
    if not isinstance(item, dict) or not isinstance(item.get("id"), str) or not is_repo_id(item["id"]):
        raise ValueError("not a model entry with an owner/name id")
    sha = item.get("sha")
    if sha is not None and not is_commit_sha(sha):
        raise ValueError("its sha is not a commit hash")
    author = item.get("author")
    return SharedModel(
        repo_id=item["id"], author=author if isinstance(author, str) and author else item["id"].split("/", 1)[0],
        downloads=_count(item.get("downloads")), likes=_count(item.get("likes")), created=_when(item.get("createdAt")),
        modified=_when(item.get("lastModified")), score=_score(item.get("cardData")), sha=sha,
    )


def _order(sort: str):
    attribute = {"downloads": "downloads", "likes": "likes", "recent": "created"}[sort]
    return lambda model: (getattr(model, attribute) is not None, getattr(model, attribute) or 0)


def _listing(endpoint: str, tag: str, text: str, sort: str, limit: int, timeout: float) -> Iterator[object]:
    """The Hub's /api/models for one tag, page after page (its Link headers) only as far as the caller reads.

    Anonymous, and with no retries: a Hub that is down is reported at once (huggingface_hub's
    `list_models` retries for half a minute and cannot be told to send no token). At most MAX_PAGES
    pages and MAX_ENTRIES entries, and a next link already followed ends it: a Hub cannot keep us listing.
    """
    params = {"filter": tag, "sort": "createdAt" if sort == "created_at" else sort, "direction": -1, "limit": limit,
              "full": True, "cardData": True, **({"search": text} if text else {})}
    url: str | None = f"{endpoint}/api/models"
    visited: set[str] = set()
    entries = 0
    while url is not None and len(visited) < MAX_PAGES:
        response = get_session().get(url, params=params, timeout=timeout)
        visited.add(str(response.request.url))
        hf_raise_for_status(response)
        page = response.json()
        if not isinstance(page, list):
            raise TypeError("a model listing is a JSON list")
        for item in page[: MAX_ENTRIES - entries]:
            entries += 1
            yield item
        if entries >= MAX_ENTRIES:
            return
        url, params = response.links.get("next", {}).get("url"), None  # the next link carries its own query
        if url is not None and str(httpx2.URL(url)) in visited:
            return  # a page that links to itself, or back: the listing ends here


def find(
    text: str = "", sort: str = "downloads", limit: int = PAGE_SIZE, offset: int = 0,
    endpoint: str | None = None, timeout: float | None = None,
) -> Found:
    """Models tagged `neural-cellular-automata` or made by this library, best first by `sort`; `limit` of them from `offset`.

    Only the pages up to `offset + limit` are fetched from each of the two listings, never everything.
    Entries that are not valid models are skipped and counted, so one bad entry costs one card, not the gallery.
    """
    if sort not in SORTS:
        raise HubError(f"sort must be one of {', '.join(SORTS)}, got {sort!r}")
    if not 1 <= limit <= 1000 or offset < 0:
        raise HubError(f"limit must be between 1 and 1000 (got {limit}) and offset at least 0 (got {offset})")
    endpoint, timeout = resolve_endpoint(endpoint), resolve_timeout(timeout)
    wanted = offset + limit
    found: dict[str, SharedModel] = {}
    skipped = 0
    try:
        for tag in (TAG, LIBRARY_NAME):
            taken = 0
            for item in _listing(endpoint, tag, text.strip(), SORTS[sort], wanted, timeout):
                try:
                    model = parse_entry(item)
                except ValueError:
                    skipped += 1
                    continue
                found.setdefault(model.repo_id, model)
                taken += 1
                if taken >= wanted:
                    break
    except HfHubHTTPError as exc:
        raise HubError(f"{endpoint} refused the model listing ({exc.response.status_code}): try again later") from None
    except NETWORK_ERRORS:
        raise HubError(f"cannot reach {endpoint}: the gallery needs the Hub; everything else works offline") from None
    except (ValueError, KeyError, TypeError, AttributeError):
        raise HubError(f"{endpoint} did not answer like a Hub (not a model listing): try again later") from None
    ranked = sorted(found.values(), key=_order(sort), reverse=True)
    return Found(ranked[offset:wanted], skipped)


def search(
    text: str = "", sort: str = "downloads", limit: int = PAGE_SIZE, offset: int = 0,
    endpoint: str | None = None, timeout: float | None = None,
) -> list[SharedModel]:
    """`find`'s models alone, for callers that do not report skipped entries."""
    return find(text, sort, limit, offset, endpoint, timeout).models


_previews: dict[tuple[str, str, str | None], Path | None] = {}
_previews_lock = threading.Lock()
_preview_dir = Path(tempfile.gettempdir()) / "nca-gallery"


def preview_path(model: SharedModel) -> Path:
    """Where a model's preview is kept: built from a checked repo id and commit hash, and checked to lie in the cache."""
    if not is_repo_id(model.repo_id) or not (model.sha is None or is_commit_sha(model.sha)):
        raise HubError(f"{model.repo_id!r} at {model.sha!r} is not a repo id and commit hash to keep a preview for")
    return inside(_preview_dir, model.repo_id.replace("/", "--"), f"{model.sha or 'main'}.gif")


def _read_capped(url: str, timeout: float, max_bytes: int) -> bytes | None:
    """The file at `url`, or None when it is not served or is larger than `max_bytes`: reading stops at max_bytes + 1."""
    with get_session().stream("GET", url, timeout=timeout, follow_redirects=True) as response:  # no retries: a card can do without
        if response.status_code != 200:
            return None
        data = bytearray()
        for chunk in response.iter_bytes(CHUNK):
            data += chunk
            if len(data) > max_bytes:
                return None
    return bytes(data)


def preview(model: SharedModel, endpoint: str | None = None, timeout: float | None = None,
            max_bytes: int = MAX_PREVIEW_BYTES) -> Path | None:
    """The model's preview.gif on disk, or None when it has none, it is too large, or the Hub fails; cached per process.

    The size is read from a HEAD first, so a file said to be large is never downloaded, and the cap holds
    while reading, so a file larger than it said is never read whole.
    """
    endpoint, timeout = resolve_endpoint(endpoint), resolve_timeout(timeout)
    key = (endpoint, model.repo_id, model.sha)
    with _previews_lock:
        if key in _previews:
            return _previews[key]
    try:
        path = preview_path(model)
        url = hf_hub_url(model.repo_id, PREVIEW_FILE, revision=model.sha or "main", endpoint=endpoint)
        size = get_hf_file_metadata(url, token=False, timeout=timeout, endpoint=endpoint).size
        data = _read_capped(url, timeout, max_bytes) if size is not None and size <= max_bytes else None
        if data is None:
            path = None
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_bytes(path, data)  # whole or not at all, even with two sessions fetching it at once
    except (HubError, HFValidationError, httpx2.StreamError):
        return None  # not a model we may keep a picture of: never asked again, never an error
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
        rows.append((plain_text(m.repo_id), plain_text(m.author, 60), f"{m.downloads:,}", f"{m.likes:,}", modified, f"{m.score:.2f}" if m.score is not None else "-"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    align = ("<", "<", ">", ">", "<", ">")
    return "\n".join("  ".join(f"{cell:{a}{w}}" for cell, a, w in zip(row, align, widths)).rstrip() for row in rows)
