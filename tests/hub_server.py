"""A loopback Hugging Face Hub for tests: the real huggingface_hub client talks HTTP to it.

Standard library only and in memory. It speaks the part of the Hub protocol that
push and pull use (see DESIGN.md), keeps every commit so a pull sees what was
pushed, and can require a token, answer 429 or 5xx, hold private repos, stall, answer
200 with something that is not the Hub's JSON, or refuse file downloads. Requests it
does not know are answered 404 and recorded in `unknown`, so a test can tell
when the client starts calling something new.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import re
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar, Self
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

GITATTRIBUTES = b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n*.gif filter=lfs diff=lfs merge=lfs -text\n"
LICENSES = {"mit", "apache-2.0", "bsd-3-clause", "cc-by-4.0", "cc-by-sa-4.0", "cc-by-nc-sa-4.0", "gpl-3.0", "other"}
REPO = r"(?P<repo>[\w.-]+/[\w.-]+)"
REV = r"(?P<rev>[^/]+)"
RATE_LIMIT_HEADERS = {"RateLimit": '"api";r=0;t=55', "RateLimit-Policy": '"fixed window";"api";q=500;w=300'}


def git_blob_sha(data: bytes) -> str:
    """The git object id of a file: what the Hub reports as `oid` and as the ETag of a regular file."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


@dataclass
class Commit:
    sha: str
    files: dict[str, bytes]
    summary: str
    parent: str | None = None


@dataclass
class Repo:
    repo_id: str
    private: bool
    commits: dict[str, Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    created: str = field(default_factory=now)
    modified: str = field(default_factory=now)
    downloads: int = 0
    likes: int = 0

    def resolve(self, revision: str) -> Commit | None:
        """A branch name or a full commit hash."""
        sha = self.branches.get(revision, revision)
        return self.commits.get(sha)


class LoopbackHub:
    """The server and its state. Use as a context manager, or `start()` / `stop()`."""

    def __init__(self, token: str | None = None) -> None:
        self.token = token  # when set, writes and private reads need `Authorization: Bearer <token>`
        self.rate_limited = False  # when True, every request is answered 429
        self.down = False  # when True, every request is answered `down_status` (the Hub is having a bad day)
        self.down_status = 503
        self.file_status: int | None = None  # when set, every file download (/resolve/) is answered with this status
        self.stall = 0.0  # seconds every request waits before it is answered (a stalled Hub)
        self.garbage: bytes | None = None  # when set, API requests are answered 200 with these bytes (HTML, or JSON of another shape)
        self.read_only = False  # when True, writes are answered 403 (a token without write access)
        self.unserved: set[str] = set()  # paths listed in a repo but answered EntryNotFound (a repo changing under a pull)
        self.page_size = 1000  # models per page of /api/models, as on the Hub; a test lowers it to see pagination
        self.repos: dict[str, Repo] = {}
        self.requests: list[str] = []  # "METHOD /path" of every request, query left out
        self.unknown: list[str] = []
        self.lock = threading.Lock()
        self._counter = itertools.count()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ lifecycle
    def start(self) -> LoopbackHub:
        handler = type("BoundHandler", (HubHandler,), {"hub": self})
        self._server = QuietServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="loopback-hub", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5)
            self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # ------------------------------------------------------------ state
    def create(self, repo_id: str, private: bool = False) -> bool:
        """Create a repo with the Hub's usual first commit (.gitattributes); False if it exists."""
        with self.lock:
            if repo_id in self.repos:
                return False
            self.repos[repo_id] = Repo(repo_id, private)
        self.commit(repo_id, {".gitattributes": GITATTRIBUTES}, "initial commit")
        return True

    def commit(
        self, repo_id: str, files: dict[str, bytes], summary: str = "", deleted: tuple[str, ...] = (), branch: str = "main"
    ) -> str:
        """Add a commit on `branch` (created from nothing if missing); returns its hash."""
        with self.lock:
            repo = self.repos[repo_id]
            parent = repo.branches.get(branch)
            tree = dict(repo.commits[parent].files) if parent else {}
            tree.update(files)
            for path in deleted:
                tree.pop(path, None)
            listing = "".join(f"{p}:{git_blob_sha(d)}\n" for p, d in sorted(tree.items()))
            seed = f"{repo_id}\n{parent}\n{summary}\n{next(self._counter)}\n{listing}"
            sha = hashlib.sha1(seed.encode()).hexdigest()
            repo.commits[sha] = Commit(sha, tree, summary, parent)
            repo.branches[branch] = sha
            repo.modified = now()
            return sha

    def seed(self, repo_id: str, files: dict[str, bytes], private: bool = False) -> str:
        """A repo holding exactly these files, written straight into the store (for broken repos)."""
        self.create(repo_id, private)
        return self.commit(repo_id, files, "seeded by a test")

    def files(self, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        return dict(self.repos[repo_id].resolve(revision).files)


class QuietServer(ThreadingHTTPServer):
    """A client that gave up (a timeout test) is no error of the server's: no traceback for a closed connection."""

    def handle_error(self, request, client_address) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class ErrorReply(Exception):
    """An error answer: HTTP status, X-Error-Code, message and extra headers."""

    def __init__(self, status: int, message: str, code: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.headers = status, message, code, headers or {}


class HubHandler(BaseHTTPRequestHandler):
    """Routes requests to small methods; every answer is JSON or file bytes. HTTP/1.0: one request a connection."""

    hub: LoopbackHub
    # METHOD path-pattern handler, one route a line; {REPO} and {REV} are the named groups above.
    ROUTES: ClassVar[list[tuple[str, str, str]]] = [
        tuple(line.split()) for line in """
        GET  /api/agent-harnesses                                  agent_harnesses
        POST /api/validate-yaml                                    validate_yaml
        POST /api/repos/create                                     create_repo
        POST /api/models/{REPO}/preupload/{REV}                    preupload
        POST /api/models/{REPO}/commit/{REV}                       commit
        POST /api/models/{REPO}/paths-info/{REV}                   paths_info
        PUT  /api/models/{REPO}/settings                           settings
        GET  /api/models                                           list_models
        GET  /api/models/{REPO}/tree/{REV}(?:/(?P<path>.*))?       tree
        GET  /api/models/{REPO}(?:/revision/{REV})?                model_info
        HEAD /{REPO}/resolve/{REV}/(?P<path>.+)                    resolve
        GET  /{REPO}/resolve/{REV}/(?P<path>.+)                    resolve
        """.replace("{REPO}", REPO).replace("{REV}", REV).strip().splitlines()
    ]

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def log_message(self, format: str, *args) -> None:
        pass

    # ------------------------------------------------------------ plumbing
    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        self.query = parse_qs(url.query)
        self.hub.requests.append(f"{method} {url.path}")
        if self.hub.stall:
            time.sleep(self.hub.stall)
        try:
            if self.hub.down:
                raise ErrorReply(self.hub.down_status, "Service Unavailable")
            if self.hub.garbage is not None and url.path.startswith("/api/"):
                self._send(200, self.hub.garbage, "application/json" if self.hub.garbage.startswith(b"{") else "text/html")
                return
            if self.hub.file_status is not None and "/resolve/" in url.path:
                raise ErrorReply(self.hub.file_status, "Access to this resource is forbidden" if self.hub.file_status == 403 else "Internal Error")
            if self.hub.rate_limited:
                raise ErrorReply(429, "You have been rate-limited", headers=RATE_LIMIT_HEADERS)
            for route_method, pattern, name in self.ROUTES:
                match = re.fullmatch(pattern, url.path)
                if route_method == method and match:
                    params = {k: unquote(v) for k, v in match.groupdict().items() if v is not None}
                    self._check_token()
                    getattr(self, name)(method=method, **params)
                    return
            self.hub.unknown.append(f"{method} {url.path}")
            print(f"loopback hub: unknown request {method} {self.path}", file=sys.stderr)
            raise ErrorReply(404, f"unknown endpoint {url.path}")
        except ErrorReply as exc:
            headers = dict(exc.headers)
            if exc.code:
                headers["X-Error-Code"] = exc.code
            headers["X-Error-Message"] = exc.message
            self._send_json(exc.status, {"error": exc.message}, headers, body=method != "HEAD")

    def _send_json(self, status: int, payload: object, headers: dict[str, str] | None = None, body: bool = True) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json", headers, body)

    def _send(
        self, status: int, data: bytes, content_type: str, headers: dict[str, str] | None = None, body: bool = True
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Request-Id", f"loopback-{len(self.hub.requests)}")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if body:
            self.wfile.write(data)

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _json_body(self) -> dict:
        try:
            return json.loads(self._body() or b"{}")
        except json.JSONDecodeError:
            raise ErrorReply(400, "the body is not JSON") from None

    def _bearer(self) -> str | None:
        header = self.headers.get("Authorization", "")
        return header[len("Bearer ") :] if header.startswith("Bearer ") else None

    def _check_token(self) -> None:
        """A token that is sent must be right, like on the Hub (which says so in X-Error-Message)."""
        sent = self._bearer()
        if sent is not None and self.hub.token is not None and sent != self.hub.token:
            raise ErrorReply(401, "Invalid credentials in Authorization header")

    def _authenticated(self) -> bool:
        return self._bearer() is not None if self.hub.token is None else self._bearer() == self.hub.token

    def _require_write(self) -> None:
        if self.hub.token is not None and not self._authenticated():
            raise ErrorReply(401, "Invalid username or password.")
        if self.hub.read_only:
            raise ErrorReply(403, "You don't have the rights to write to this namespace")

    def _repo(self, repo_id: str) -> Repo:
        """A readable repo; a private one without the token reads as missing (401), as on the Hub."""
        repo = self.hub.repos.get(repo_id)
        if repo is None:
            raise ErrorReply(404, "Repository not found", "RepoNotFound")
        if repo.private and not self._authenticated():
            raise ErrorReply(401, "Repository not found", "RepoNotFound")
        return repo

    def _commit(self, repo: Repo, revision: str) -> Commit:
        commit = repo.resolve(revision)
        if commit is None:
            raise ErrorReply(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return commit

    def _entry(self, path: str, data: bytes) -> dict:
        return {"type": "file", "oid": git_blob_sha(data), "size": len(data), "path": path}

    # ------------------------------------------------------------ endpoints
    def agent_harnesses(self, method: str) -> None:
        self._send_json(200, {"standardEnvVars": [], "harnesses": {}})

    def validate_yaml(self, method: str) -> None:
        body = self._json_body()
        errors, warnings = check_card_metadata(str(body.get("content", "")))
        answer = {"errors": [{"message": e} for e in errors], "warnings": [{"message": w} for w in warnings]}
        self._send_json(400 if errors else 200, answer)

    def create_repo(self, method: str) -> None:
        self._require_write()
        body = self._json_body()
        if body.get("type", "model") != "model":
            raise ErrorReply(400, "the loopback hub only holds model repos")
        name, owner = str(body.get("name", "")), body.get("organization") or "user"
        repo_id = f"{owner}/{name}"
        if not re.fullmatch(REPO, repo_id):
            raise ErrorReply(400, f"invalid repo name {repo_id!r}")
        created = self.hub.create(repo_id, private=body.get("visibility") == "private" or bool(body.get("private")))
        url = f"{self.hub.url}/{repo_id}"
        if not created:
            self._send_json(409, {"error": "You already created this model repo", "url": url})
            return
        self._send_json(200, {"url": url, "name": repo_id, "id": repo_id})

    def settings(self, method: str, repo: str) -> None:
        """Change a repo's visibility, as `HfApi.update_repo_settings` asks."""
        self._require_write()
        target = self._repo(repo)
        visibility = self._json_body().get("visibility")
        if visibility not in ("public", "private", None):
            raise ErrorReply(400, f"invalid visibility {visibility!r}")
        if visibility is not None:
            target.private = visibility == "private"
        self._send_json(200, {})

    def preupload(self, method: str, repo: str, rev: str) -> None:
        self._require_write()
        commit = self._commit(self._repo(repo), rev)
        files = self._json_body().get("files", [])
        answer = [
            {
                "path": f["path"],
                "uploadMode": "regular",  # files inline in the commit: no LFS, no xet
                "shouldIgnore": False,
                "oid": git_blob_sha(commit.files[f["path"]]) if f["path"] in commit.files else None,
            }
            for f in files
        ]
        self._send_json(200, {"files": answer, "commitOid": commit.sha})

    def commit(self, method: str, repo: str, rev: str) -> None:
        self._require_write()
        target = self._repo(repo)
        if rev not in target.branches:
            raise ErrorReply(404, f"Invalid rev id: {rev}", "RevisionNotFound")
        header, files, deleted = parse_commit(self._body())
        parent = header.get("parentCommit")
        if parent and parent != target.branches[rev]:
            raise ErrorReply(412, "A commit has happened since. Please refresh and try again.")
        sha = self.hub.commit(repo, files, str(header.get("summary", "")), tuple(deleted), rev)
        url = f"{self.hub.url}/{repo}/commit/{sha}"
        self._send_json(200, {"success": True, "commitOid": sha, "commitUrl": url, "hookOutput": ""})

    def model_info(self, method: str, repo: str, rev: str = "main") -> None:
        target = self._repo(repo)
        commit = self._commit(target, rev)
        self._send_json(
            200,
            {
                "_id": hashlib.sha1(repo.encode()).hexdigest()[:24],
                "id": repo,
                "modelId": repo,
                "author": repo.split("/")[0],
                "sha": commit.sha,
                "private": target.private,
                "gated": False,
                "disabled": False,
                "createdAt": target.created,
                "lastModified": now(),
                "tags": [],
                "siblings": [self._sibling(path, data) for path, data in sorted(commit.files.items())],
            },
        )

    LIST_SORTS: ClassVar[dict[str, str]] = {"downloads": "downloads", "likes": "likes", "createdAt": "created", "lastModified": "modified"}

    def list_models(self, method: str) -> None:
        """/api/models as the Hub serves it: every `filter` (a tag or the library) must match, `search` is a
        case-insensitive part of the id, `sort` with `direction=-1` is descending, pages of `limit` (at most
        `page_size`) are linked by a `Link: <...>; rel="next"` header with a cursor. Public repos only."""
        filters = self.query.get("filter", [])
        search = self.query.get("search", [""])[0].lower()
        sort = self.query.get("sort", [None])[0]
        if sort is not None and sort not in self.LIST_SORTS:
            raise ErrorReply(400, f"invalid sort {sort}")
        limit = min(int(self.query.get("limit", [self.hub.page_size])[0]), self.hub.page_size)
        start = int(self.query.get("cursor", ["0"])[0])
        full = any(self.query.get(k, ["false"])[0].lower() in ("1", "true") for k in ("full", "cardData"))
        found = []
        for repo in list(self.hub.repos.values()):
            if repo.private or search not in repo.repo_id.lower():
                continue
            card, _ = parse_card_metadata(repo.resolve("main").files.get("README.md", b"").decode("utf-8", "replace"))
            tags = [*card.get("tags", []), *([card["library_name"]] if card.get("library_name") else [])]
            if all(f in tags for f in filters):
                found.append((repo, card, tags))
        if sort is not None:
            key = self.LIST_SORTS[sort]
            found.sort(key=lambda item: getattr(item[0], key), reverse=self.query.get("direction", ["-1"])[0] == "-1")
        page = found[start : start + limit]
        models = [self._listed(repo, card, tags, full) for repo, card, tags in page]
        headers = {}
        if start + limit < len(found):
            query = [(k, v) for k, values in self.query.items() if k != "cursor" for v in values] + [("cursor", str(start + limit))]
            headers["Link"] = f'<{self.hub.url}/api/models?{urlencode(query)}>; rel="next"'
        self._send_json(200, models, headers)

    def _listed(self, repo: Repo, card: dict, tags: list[str], full: bool) -> dict:
        entry = {"_id": hashlib.sha1(repo.repo_id.encode()).hexdigest()[:24], "id": repo.repo_id, "modelId": repo.repo_id,
                 "likes": repo.likes, "downloads": repo.downloads, "private": False, "tags": tags,
                 "library_name": card.get("library_name"), "createdAt": repo.created}
        if full:
            entry.update(author=repo.repo_id.split("/")[0], lastModified=repo.modified, sha=repo.branches["main"], cardData=card,
                         siblings=[{"rfilename": p} for p in sorted(repo.resolve("main").files)])
        return entry

    def _sibling(self, path: str, data: bytes) -> dict:
        """A file of a model listing; with `?blobs=true` (files_metadata) it carries its size and blob id, as on the Hub."""
        if self.query.get("blobs", ["false"])[0].lower() not in ("1", "true"):
            return {"rfilename": path}
        return {"rfilename": path, "size": len(data), "blobId": git_blob_sha(data)}

    def tree(self, method: str, repo: str, rev: str, path: str = "") -> None:
        commit = self._commit(self._repo(repo), rev)
        prefix = f"{path.strip('/')}/" if path.strip("/") else ""
        recursive = self.query.get("recursive", ["false"])[0].lower() in ("1", "true")
        entries, folders = [], set()
        for name, data in sorted(commit.files.items()):
            if not name.startswith(prefix):
                continue
            rest = name[len(prefix) :]
            if "/" in rest and not recursive:
                folders.add(prefix + rest.split("/", 1)[0])
                continue
            entries.append(self._entry(name, data))
        entries += [{"type": "directory", "oid": "0" * 40, "size": 0, "path": f} for f in sorted(folders)]
        self._send_json(200, entries)

    def paths_info(self, method: str, repo: str, rev: str) -> None:
        commit = self._commit(self._repo(repo), rev)
        raw = self._body()
        if self.headers.get("Content-Type", "").startswith("application/json"):
            paths = json.loads(raw or b"{}").get("paths", [])
        else:
            paths = parse_qs(raw.decode()).get("paths", [])
        self._send_json(200, [self._entry(p, commit.files[p]) for p in paths if p in commit.files])

    def resolve(self, method: str, repo: str, rev: str, path: str) -> None:
        commit = self._commit(self._repo(repo), rev)
        if path not in commit.files or path in self.hub.unserved:
            raise ErrorReply(404, "Entry not found", "EntryNotFound", {"X-Repo-Commit": commit.sha})
        data = commit.files[path]
        headers = {"X-Repo-Commit": commit.sha, "ETag": f'"{git_blob_sha(data)}"', "Accept-Ranges": "none"}
        self._send(200, data, "application/octet-stream", headers, body=method == "GET")


def parse_commit(body: bytes) -> tuple[dict, dict[str, bytes], list[str]]:
    """The NDJSON commit payload: a header line, then `file` lines (base64 content) and `deletedFile` lines."""
    header: dict = {}
    files: dict[str, bytes] = {}
    deleted: list[str] = []
    for line in body.splitlines():
        if not line.strip():
            continue
        item = json.loads(line)
        key, value = item.get("key"), item.get("value", {})
        if key == "header":
            header = value
        elif key == "file":
            content = value.get("content", "")
            files[value["path"]] = base64.b64decode(content) if value.get("encoding") == "base64" else content.encode()
        elif key in ("deletedFile", "deletedFolder"):
            deleted.append(value["path"])
        else:
            raise ErrorReply(400, f"the loopback hub does not accept {key!r} operations (answer uploadMode regular)")
    if not header:
        raise ErrorReply(400, "the commit has no header line")
    return header, files, deleted


def parse_card_metadata(content: str) -> tuple[dict, list[str]]:
    """The front matter of a card, for the YAML subset a model card uses, and the lines that are not of it."""
    lines = content.lstrip("\ufeff").splitlines()
    if not lines or lines[0].strip() != "---":
        return {}, []
    try:
        end = next(i for i, line in enumerate(lines[1:], 1) if line.strip() == "---")
    except StopIteration:
        return {}, ["the metadata block has no closing ---"]
    metadata, key, errors = {}, None, []
    for number, line in enumerate(lines[1:end], 2):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        item = re.fullmatch(r"\s*- (.+)", line)
        pair = re.fullmatch(r"([A-Za-z_][\w-]*):(?: (.*))?", line)
        if item and isinstance(metadata.get(key), list):
            metadata[key].append(item.group(1).strip().strip("'\""))
        elif pair:
            key = pair.group(1)
            value = (pair.group(2) or "").strip()
            metadata[key] = value.strip("'\"") if value else []
        else:
            errors.append(f"line {number} is not valid YAML for a model card: {line.strip()[:40]!r}")
    return metadata, errors


def check_card_metadata(content: str) -> tuple[list[str], list[str]]:
    """What /api/validate-yaml checks, for the YAML subset a model card uses: errors and warnings."""
    if not content.lstrip("\ufeff").startswith("---"):
        return [], ["empty or missing yaml metadata in repo card"]
    metadata, errors = parse_card_metadata(content)
    if "license" in metadata and metadata["license"] not in LICENSES:
        errors.append(f'"license" must be one of {sorted(LICENSES)}')
    if "tags" in metadata and not isinstance(metadata["tags"], list):
        errors.append('"tags" must be a list of strings')
    if "library_name" in metadata and not (isinstance(metadata["library_name"], str) and metadata["library_name"]):
        errors.append('"library_name" must be a string')
    return errors, []
