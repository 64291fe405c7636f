"""A stand-in for the Hugging Face hub on 127.0.0.1: folders served through the hub's file API, so
``from_pretrained`` and ``datasets.load_dataset`` download from it with their own resolution code
(``HF_ENDPOINT`` points here) and leave their caches exactly as a real download does.

    with FakeHub({"model": {"org/tiny": folder}, "dataset": {"org/data": folder}}) as hub:
        env = hub.env(hf_home)   # HF_ENDPOINT, HF_HOME, online

Served: ``/api/{models,datasets}/<repo>[/revision/<rev>]`` (repository info),
``.../tree/<rev>[/<path>]`` (listings), ``.../paths-info/<rev>`` and
``[datasets/]<repo>/resolve/<rev>/<path>`` (files, with the ``X-Repo-Commit`` and ``ETag`` headers
the client reads). Unknown files answer 404 with ``X-Error-Code: EntryNotFound``, as the hub does.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from functools import partial
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

KINDS = {"model": "models", "dataset": "datasets"}


class Repo:
    """One repository: a folder, its files and a commit hash computed from their contents."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.files = sorted(p.relative_to(self.folder).as_posix()
                            for p in self.folder.rglob("*") if p.is_file())
        digest = hashlib.sha1()
        for name in self.files:
            digest.update(name.encode() + b"\0" + (self.folder / name).read_bytes())
        self.sha = digest.hexdigest()

    def entry(self, path: str) -> dict | None:
        """The tree entry of a file or folder, or None."""
        if path in self.files:
            data = (self.folder / path).read_bytes()
            return {"type": "file", "path": path, "size": len(data),
                    "oid": hashlib.sha1(data).hexdigest()}
        if any(f.startswith(path.rstrip("/") + "/") for f in self.files) and path:
            return {"type": "directory", "path": path.rstrip("/"), "size": 0, "oid": self.sha}
        return None

    def listing(self, path: str, recursive: bool) -> list[dict]:
        prefix = path.strip("/") + "/" if path.strip("/") else ""
        found = {}
        for name in self.files:
            if not name.startswith(prefix):
                continue
            parts = name[len(prefix):].split("/")
            for depth in range(1, len(parts) + 1 if recursive else 2):
                sub = prefix + "/".join(parts[:depth])
                found.setdefault(sub, self.entry(sub))
        return [found[k] for k in sorted(found)]


class FakeHub:
    def __init__(self, repos: dict[str, dict[str, Path]]):
        self.repos = {(kind, name): Repo(folder)
                      for kind, named in repos.items() for name, folder in named.items()}
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.requests: list[str] = []

    def __enter__(self) -> "FakeHub":
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def env(self, hf_home: Path) -> dict[str, str]:
        """Environment variables under which the hub libraries download from here into hf_home."""
        return {"HF_ENDPOINT": self.url, "HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "0",
                "HF_DATASETS_OFFLINE": "0", "HF_HUB_DISABLE_TELEMETRY": "1",
                "HF_UPDATE_DOWNLOAD_COUNTS": "0", "HF_HUB_DISABLE_XET": "1"}

    def _handler(self):
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_HEAD(self):
                self._answer(body=False)

            def do_GET(self):
                self._answer(body=True)

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode()
                try:
                    form = json.loads(raw)
                except ValueError:
                    form = {k: v for k, v in parse_qs(raw).items()}
                self._answer(body=True, form=form)

            def _answer(self, body: bool, form: dict | None = None):
                url = urlparse(self.path)
                path, query = unquote(url.path), parse_qs(url.query)
                hub.requests.append(f"{self.command} {path}")
                api = re.match(r"^/api/(models|datasets)/([^/]+/[^/]+)(?:/(revision|tree|paths-info)/"
                               r"([^/]+)(?:/(.*))?)?$", path)
                if api:
                    kind, name, verb, revision, rest = api.groups()
                    return self._api(kind, name, verb, revision, rest or "", query, form, body)
                resolve = re.match(r"^/(datasets/)?([^/]+/[^/]+)/resolve/([^/]+)/(.+)$", path)
                if resolve:
                    prefix, name, revision, file = resolve.groups()
                    return self._file("datasets" if prefix else "models", name, revision, file, body)
                self._error(404, "RepoNotFound", body)

            def _repo(self, kind, name, revision, body):
                repo = hub.repos.get(({v: k for k, v in KINDS.items()}[kind], name))
                if repo is None:
                    self._error(404, "RepoNotFound", body)
                elif revision not in (None, "main", repo.sha):
                    self._error(404, "RevisionNotFound", body)
                else:
                    return repo
                return None

            def _api(self, kind, name, verb, revision, rest, query, form, body):
                repo = self._repo(kind, name, revision, body)
                if repo is None:
                    return
                if verb in (None, "revision"):
                    payload = {"id": name, "_id": repo.sha[:24], "sha": repo.sha, "private": False,
                               "gated": False, "disabled": False, "downloads": 0, "likes": 0,
                               "tags": [], "lastModified": "2026-01-01T00:00:00.000Z",
                               "siblings": [{"rfilename": f} for f in repo.files]}
                elif verb == "tree":
                    recursive = query.get("recursive", ["false"])[0].lower() == "true"
                    if rest and repo.entry(rest) is None:
                        return self._error(404, "EntryNotFound", body)
                    payload = repo.listing(rest, recursive)
                else:  # paths-info
                    paths = (form or {}).get("paths", [])
                    paths = [paths] if isinstance(paths, str) else paths
                    payload = [e for e in (repo.entry(p) for p in paths) if e is not None]
                self._send(200, json.dumps(payload).encode(), {"Content-Type": "application/json",
                                                               "X-Repo-Commit": repo.sha}, body)

            def _file(self, kind, name, revision, file, body):
                repo = self._repo(kind, name, revision, body)
                if repo is None:
                    return
                if file not in repo.files:
                    return self._error(404, "EntryNotFound", body, {"X-Repo-Commit": repo.sha})
                data = (repo.folder / file).read_bytes()
                etag = f'"{hashlib.sha256(data).hexdigest()}"'
                self._send(200, data, {"X-Repo-Commit": repo.sha, "ETag": etag,
                                       "Content-Type": "application/octet-stream"}, body)

            def _error(self, status, code, body, headers=None):
                message = json.dumps({"error": code}).encode()
                self._send(status, message, {"X-Error-Code": code, "X-Error-Message": code,
                                             "Content-Type": "application/json", **(headers or {})},
                           body)

            def _send(self, status, data, headers, body):
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if body:
                    self.wfile.write(data)

        return Handler


class FileServer:
    """A folder served over HTTP on 127.0.0.1 (a stand-in for a download URL), as a context
    manager; ``url`` is the folder's root."""

    def __init__(self, folder: Path):
        class Quiet(SimpleHTTPRequestHandler):
            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(folder)))
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> "FileServer":
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
