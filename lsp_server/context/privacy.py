"""What repository context may read: workspace folders (and open documents) only,
never ignored files (``.gitignore``, the ``contextExclude`` setting), never files
that look like secrets, never binaries.

Rules are checked before a file is opened; binaries are recognised by their
first bytes.  Paths are compared after resolving symlinks, so a link inside the
workspace that points outside it is not followed.
"""
from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

import pathspec

#: file names and directories that hold credentials (gitignore syntax, matched anywhere)
SECRET_PATTERNS = (
    ".env", ".env.*", "*.env", ".envrc", "*.pem", "*.key", "*.crt", "*.cer", "*.der", "*.p12", "*.pfx",
    "*.jks", "*.keystore", "*.kdbx", "*.gpg", "*.asc", "*.ovpn", "id_rsa*", "id_dsa*", "id_ecdsa*",
    "id_ed25519*", "*credential*", "*secret*", "*password*", "*token*.json", ".netrc", "_netrc", ".npmrc",
    ".pypirc", ".htpasswd", ".git-credentials", ".dockercfg", "kubeconfig", "*.tfstate", "*.tfvars",
    ".ssh/", ".aws/", ".gnupg/", ".docker/", ".kube/", ".azure/", ".config/gcloud/",
)
#: never worth indexing, ignored or not
DEFAULT_EXCLUDE = (".git/", ".hg/", ".svn/", "node_modules/", "__pycache__/", ".venv/", ".tox/", ".mypy_cache/",
                   ".ruff_cache/", ".pytest_cache/", "*.min.js")
#: bytes read to tell a binary
SNIFF_BYTES = 8192

_SECRETS = pathspec.GitIgnoreSpec.from_lines(SECRET_PATTERNS)


def looks_secret(rel_path: str) -> bool:
    """Whether a path (relative to its folder, ``/`` separators) names credentials."""
    return _SECRETS.match_file(rel_path)


def looks_binary(head: bytes) -> bool:
    """NUL bytes or invalid UTF-8 in the first bytes: not source text."""
    if b"\x00" in head[:SNIFF_BYTES]:
        return True
    try:
        head[:SNIFF_BYTES].decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start < len(head[:SNIFF_BYTES]) - 4  # a character cut at the end is fine
    return False


class Rules:
    """The read rules of one set of workspace folders and exclude patterns.

    ``.gitignore`` files are loaded once per directory and cached; every
    ``.gitignore`` from the folder down to a file's directory applies (deeper
    ones relative to their own directory, as git does).
    """

    def __init__(self, folders: Sequence[str], exclude: Iterable[str] = ()) -> None:
        self.folders = sorted({os.path.realpath(f) for f in folders}, key=len, reverse=True)
        self.exclude = pathspec.GitIgnoreSpec.from_lines([*DEFAULT_EXCLUDE, *exclude])
        self._gitignores: dict[str, pathspec.GitIgnoreSpec | None] = {}
        self._lock = threading.Lock()
        self._open_verdicts: dict[str, bool] = {}
        self._shown: dict[str, str] = {}

    def folder_of(self, path: str) -> str | None:
        """The (innermost) workspace folder holding ``path`` (already resolved)."""
        for folder in self.folders:
            if path.startswith(folder) and (len(path) == len(folder) or path[len(folder)] == os.sep):
                return folder
        return None

    def _gitignore(self, directory: str) -> pathspec.GitIgnoreSpec | None:
        with self._lock:
            if directory in self._gitignores:
                return self._gitignores[directory]
        spec = None
        try:
            with open(os.path.join(directory, ".gitignore"), encoding="utf-8", errors="replace") as f:
                spec = pathspec.GitIgnoreSpec.from_lines(f.read().splitlines())
        except OSError:
            pass
        with self._lock:
            if len(self._gitignores) > 50_000:  # bounded: a huge tree forgets, then reloads
                self._gitignores.clear()
            self._gitignores[directory] = spec
        return spec

    def ignored(self, path: str, folder: str, is_dir: bool = False) -> bool:
        """Excluded, secret or git-ignored (``path`` resolved, inside ``folder``)."""
        rel = os.path.relpath(path, folder).replace(os.sep, "/")
        if rel == ".":
            return False
        suffix = "/" if is_dir else ""
        if self.exclude.match_file(rel + suffix) or looks_secret(rel + suffix):
            return True
        parts = rel.split("/")
        directory = folder
        for i in range(len(parts)):
            spec = self._gitignore(directory)
            if spec is not None and spec.match_file("/".join(parts[i:]) + suffix):
                return True
            directory = os.path.join(directory, parts[i])
        return False

    def may_read(self, path: str) -> bool:
        """Whether the file at ``path`` may be read as context (not its content check)."""
        real = os.path.realpath(path)
        folder = self.folder_of(real)
        return folder is not None and not self.ignored(real, folder)

    def may_use_open(self, path: str | None) -> bool:
        """``_may_use_open``, remembered per path (requests ask about the same open
        documents again and again; the rules do not change)."""
        if path is None:
            return True
        known = self._open_verdicts.get(path)
        if known is None:
            if len(self._open_verdicts) > 10_000:
                self._open_verdicts.clear()
            known = self._open_verdicts[path] = self._may_use_open(path)
        return known

    def _may_use_open(self, path: str) -> bool:
        """Whether an open document's text may be used: inside the workspace the
        same rules as files; outside it only the secret and exclude rules (the
        user opened it, nothing is read from disk)."""
        real = os.path.realpath(path)
        folder = self.folder_of(real)
        if folder is not None:
            return not self.ignored(real, folder)
        name = Path(real).name
        return not looks_secret(name) and not self.exclude.match_file(name)

    def shown_path(self, path: str) -> str:
        """The path the model sees: relative to its workspace folder, else as is."""
        shown = self._shown.get(path)
        if shown is None:
            real = os.path.realpath(path)
            folder = self.folder_of(real)
            shown = os.path.relpath(real, folder).replace(os.sep, "/") if folder else path
            if len(self._shown) > 10_000:
                self._shown.clear()
            self._shown[path] = shown
        return shown
