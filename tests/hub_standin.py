"""A small stand-in for the Hugging Face Hub on loopback, for the pull tests.

NOT the real hub: it implements only what ``huggingface_hub`` uses to list and
download one revision of a model repository (the tree API, the revision API,
HEAD/GET on ``resolve`` with ``X-Repo-Commit``/``ETag``/``X-Linked-*`` headers and
HTTP range requests), serving files from directories on disk.  Faults can be
switched on per file: cut the connection half-way through once, serve damaged
bytes, or advertise an enormous size.  Every request is logged so tests can
see what was fetched.

Nothing here was ever compared with the real hub's behaviour; what the real
hub does differently (Xet storage, CDN redirects, authentication, rate limits)
is untested.
"""
from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse

LFS_SUFFIXES = (".safetensors", ".bin")
#: how often serve_forever looks for shutdown(): a test's teardown waits up to this long
POLL_S = 0.02


@dataclass
class Repo:
    repo_id: str
    commit: str
    files: dict[str, bytes]

    def entry(self, path: str, size: int | None = None) -> dict:
        data = self.files[path]
        size = len(data) if size is None else size
        blob = hashlib.sha1(f"blob {len(data)}\0".encode() + data).hexdigest()
        out = {"type": "file", "oid": blob, "size": size, "path": path}
        if path.endswith(LFS_SUFFIXES):
            out["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": size, "pointerSize": 134}
        return out


@dataclass
class Faults:
    cut_once: set[str] = field(default_factory=set)  # paths: first GET stops half-way
    corrupt: set[str] = field(default_factory=set)  # paths: bytes differ from the listed hash
    fail: set[str] = field(default_factory=set)  # paths: GET answers 500
    huge: dict[str, int] = field(default_factory=dict)  # path -> size claimed in the listing


class HubStandIn:
    """``with HubStandIn(repos) as hub: ... hub.url ...`` (serves until the block ends)."""

    def __init__(self, repos: list[Repo]) -> None:
        self.repos = {r.repo_id: r for r in repos}
        self.faults = Faults()
        self.log: list[tuple[str, str, str | None]] = []  # (method, path, Range header)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": POLL_S},
                                        daemon=True)
        self._closed = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> HubStandIn:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        """Stop serving (again: a no-op), so tests can take the hub away mid-test."""
        if self._closed:
            return
        self._closed = True
        self._server.shutdown()
        self._server.server_close()

    def requests(self, method: str, suffix: str) -> list[tuple[str, str, str | None]]:
        with self._lock:
            return [r for r in self.log if r[0] == method and r[1].endswith(suffix)]

    # -- HTTP -------------------------------------------------------------------
    def _handler(self):
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def do_HEAD(self) -> None:
                hub._serve(self, head=True)

            def do_GET(self) -> None:
                hub._serve(self, head=False)

        return Handler

    def _send(self, h, status: int, headers: dict[str, str], body: bytes = b"", head: bool = False) -> None:
        h.send_response(status)
        for key, value in headers.items():
            h.send_header(key, value)
        if "Content-Length" not in headers:
            h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if not head:
            h.wfile.write(body)

    def _json(self, h, obj, head: bool) -> None:
        self._send(h, 200, {"Content-Type": "application/json"}, json.dumps(obj).encode(), head)

    def _serve(self, h, head: bool) -> None:
        path = unquote(urlparse(h.path).path)
        with self._lock:
            self.log.append(("HEAD" if head else "GET", path, h.headers.get("Range")))
        parts = path.strip("/").split("/")
        if parts[:2] == ["api", "models"] and len(parts) == 4:  # model_info without a revision: main
            parts = [*parts, "revision", "main"]
        if parts[:2] == ["api", "models"] and len(parts) >= 6 and parts[4] in ("tree", "revision"):
            repo = self.repos.get(f"{parts[2]}/{parts[3]}")
            if repo is None or parts[5] not in ("main", repo.commit):
                return self._send(h, 404, {"X-Error-Code": "RepoNotFound"}, b"{}", head)
            if parts[4] == "revision":
                siblings = [{"rfilename": p} for p in repo.files]
                return self._json(h, {"id": repo.repo_id, "sha": repo.commit, "siblings": siblings}, head)
            return self._json(h, [repo.entry(p, self.faults.huge.get(p)) for p in sorted(repo.files)], head)
        if len(parts) >= 5 and parts[2] == "resolve":
            return self._resolve(h, f"{parts[0]}/{parts[1]}", parts[3], "/".join(parts[4:]), head)
        self._send(h, 404, {}, b"not found", head)

    def _resolve(self, h, repo_id: str, revision: str, file: str, head: bool) -> None:
        repo = self.repos.get(repo_id)
        if repo is None or revision not in ("main", repo.commit) or file not in repo.files:
            return self._send(h, 404, {"X-Repo-Commit": repo.commit if repo else "",
                                       "X-Error-Code": "EntryNotFound"}, b"", head)
        data = repo.files[file]
        entry = repo.entry(file)
        etag = entry["lfs"]["oid"] if "lfs" in entry else entry["oid"]
        headers = {"X-Repo-Commit": repo.commit, "ETag": f'"{etag}"', "Accept-Ranges": "bytes"}
        if "lfs" in entry:
            headers["X-Linked-Etag"] = f'"{etag}"'
            headers["X-Linked-Size"] = str(len(data))
        if head:
            return self._send(h, 200, {**headers, "Content-Length": str(len(data))}, head=True)
        if file in self.faults.fail:
            return self._send(h, 500, {}, b"stand-in: injected server error")
        if file in self.faults.corrupt:
            data = bytes([data[0] ^ 0xFF]) + data[1:]
        start = 0
        rng = h.headers.get("Range")
        if rng and rng.startswith("bytes="):
            start = int(rng[len("bytes="):].split("-")[0] or 0)
        body = data[start:]
        status = 206 if start else 200
        if start:
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        if file in self.faults.cut_once and not start:
            self.faults.cut_once.discard(file)
            h.send_response(200)
            for key, value in headers.items():
                h.send_header(key, value)
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body[: len(body) // 2])
            h.wfile.flush()
            h.close_connection = True
            h.connection.shutdown(2)  # the peer sees the body end early
            return
        self._send(h, status, {**headers, "Content-Length": str(len(body))}, body)


def repo_from_dir(repo_id: str, directory: Path, extra: dict[str, bytes] | None = None,
                  commit: str | None = None) -> Repo:
    """A stand-in repository holding every file of ``directory`` (plus ``extra``) at ``commit``
    (default: a hash of the name)."""
    files = {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}
    files.update(extra or {})
    return Repo(repo_id, commit or hashlib.sha1(repo_id.encode()).hexdigest(), files)
