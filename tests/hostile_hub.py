"""A hostile or broken Hub on loopback, for tests of a client that must trust nothing.

Standard library only. `HostileHub` speaks just enough of the Hub protocol (the model
listing, a model's file list, HEAD and GET of a file) to serve what a probe found harmful:
listings whose entries carry path traversal, wrong types or terminal escapes, a next link
that points to itself (or an endless chain of new ones), and a preview whose HEAD says
100 bytes while its GET streams far more, counting the bytes it really sent. `SilentHub`
accepts connections and never answers. Both listen on 127.0.0.1 only and stop themselves
after `lifetime` seconds, so a client that hangs on them cannot hang the test run.
"""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self
from urllib.parse import parse_qs, urlsplit

COMMIT = "0123456789abcdef0123456789abcdef01234567"
HEAD_SIZE = 100  # what the HEAD of a preview claims
STREAM_BYTES = 50 * 2**20  # what its GET then sends, generated lazily
CHUNK = 64 * 2**10
LISTED_TAG = "neural-cellular-automata"  # the listing that gets `listing`; the library's listing is empty


def entry(repo_id: object, **fields: object) -> dict:
    """A /api/models entry as the Hub's `full=true` listing gives it; `fields` override or break it."""
    owner = repo_id.split("/")[0] if isinstance(repo_id, str) else "x"
    return {"id": repo_id, "author": owner, "downloads": 10, "likes": 1, "sha": COMMIT, "private": False,
            "createdAt": "2025-01-01T00:00:00.000Z", "lastModified": "2025-01-02T00:00:00.000Z",
            "tags": ["neural-cellular-automata"], "cardData": {}, **fields}


class _Stopping:
    """Start, and stop after `lifetime` seconds or when told; a context manager."""

    def __init__(self, lifetime: float) -> None:
        self.lifetime = lifetime
        self._timer: threading.Timer | None = None

    def _serve(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def start(self) -> Self:
        self._serve()
        self._timer = threading.Timer(self.lifetime, self.stop)
        self._timer.daemon = True
        self._timer.start()
        return self

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self._timer.cancel()
        self.stop()


class HostileHub(_Stopping):
    """Serves `listing` (a list of pages of entries) at /api/models; `self_link` or `endless` make its Link headers lie."""

    def __init__(self, listing: list[list[object]] | None = None, lifetime: float = 60.0) -> None:
        super().__init__(lifetime)
        self.listing = listing or [[]]
        self.self_link = False  # each page's next link is the page itself
        self.endless = False  # each page links to a new page, forever
        self.siblings: list[dict] = []  # the file list of any model's info
        self.requests: list[str] = []  # "METHOD path" of each request
        self.stream_bytes = STREAM_BYTES  # what a GET of a file sends
        self.sent = 0  # bytes of file bodies written to clients
        self.lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def _serve(self) -> None:
        handler = type("BoundHostileHandler", (HostileHandler,), {"hub": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class HostileHandler(BaseHTTPRequestHandler):
    hub: HostileHub

    def log_message(self, format: str, *args) -> None:
        pass

    def do_GET(self) -> None:
        self._route("GET")

    def do_HEAD(self) -> None:
        self._route("HEAD")

    def _route(self, method: str) -> None:
        path = urlsplit(self.path).path
        with self.hub.lock:
            self.hub.requests.append(f"{method} {path}")
        if path == "/api/models":
            self._listing()
        elif path.startswith("/api/models/"):
            self._json({"id": path.split("/")[3] + "/" + path.split("/")[4], "sha": COMMIT, "siblings": self.hub.siblings})
        elif "/resolve/" in path and method == "HEAD":
            self._head()
        elif "/resolve/" in path:
            self._stream()
        else:
            self._json({"error": "not here"}, 404)

    def _listing(self) -> None:
        """`listing` for the gallery's tag (the library's own listing is empty), a page per `page` parameter."""
        query = parse_qs(urlsplit(self.path).query)
        page, tag = int(query.get("page", ["0"])[0]), query.get("filter", [LISTED_TAG])[0]
        pages = self.hub.listing if tag == LISTED_TAG else [[]]
        entries = pages[page] if page < len(pages) else []
        headers = {}
        if self.hub.self_link:
            headers["Link"] = f'<{self.hub.url}{self.path}>; rel="next"'
        elif self.hub.endless or page + 1 < len(pages):
            headers["Link"] = f'<{self.hub.url}/api/models?filter={tag}&page={page + 1}>; rel="next"'
        self._json(entries, headers=headers)

    def _json(self, payload: object, status: int = 200, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def _file_headers(self, length: int | None) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "image/gif")
        self.send_header("ETag", '"preview"')
        self.send_header("X-Repo-Commit", COMMIT)
        if length is not None:
            self.send_header("Content-Length", str(length))
        self.end_headers()

    def _head(self) -> None:
        self._file_headers(HEAD_SIZE)

    def _stream(self) -> None:
        """`stream_bytes` of GIF-looking bytes with no length (HTTP/1.0: the end is the closed connection)."""
        self._file_headers(None)
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, CHUNK)  # little kept in the server's buffer
        left = self.hub.stream_bytes
        try:
            while left > 0:
                chunk = (b"GIF89a" + bytes(CHUNK))[: min(CHUNK, left)]
                self.wfile.write(chunk)
                left -= len(chunk)
                with self.hub.lock:
                    self.hub.sent += len(chunk)
        except OSError:
            pass  # the client stopped reading and closed: what a capped read does


class SilentHub(_Stopping):
    """Accepts every connection and never answers a byte, until `lifetime` ends and it closes them all."""

    def __init__(self, lifetime: float = 60.0) -> None:
        super().__init__(lifetime)
        self.accepted = 0
        self._socket: socket.socket | None = None
        self._held: list[socket.socket] = []
        self._stopped = threading.Event()

    def _serve(self) -> None:
        self._socket = socket.create_server(("127.0.0.1", 0))
        self._socket.settimeout(0.1)
        self.port = self._socket.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                connection, _ = self._socket.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._held.append(connection)
            self.accepted += 1

    def stop(self) -> None:
        self._stopped.set()
        for connection in [*self._held, self._socket]:
            connection.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"
