"""Which ``trustRemoteCode`` entries the server accepts.

Clients pass settings that a repository may have written (a VS Code
workspace's ``.vscode/settings.json``, Emacs ``.dir-locals.el``, ...).  The
editors keep such settings away from the server themselves; this module is the
second line of defence for clients that do not: model code is trusted only for
models named in a way a repository cannot fake,

* an absolute path (``~`` allowed) that does not resolve into a workspace
  folder (a repository could ship the model and its code there), or
* a hub id (``owner/name``) that is not also a path on disk relative to the
  server's working directory (the engine loads an existing directory before it
  looks in the hub cache, and the working directory is often the project).

Anything else (a relative path, a hub id shadowed by a directory) is refused
with a message naming the entry and why.
"""
from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from lsp_server.config import Settings
from lsp_server.documents.uris import fs_path

#: names the engine resolves to the bundled model before looking at the disk
BUNDLED_NAMES = ("bundled", "diffill-tiny")
#: ``owner/name`` as the Hugging Face hub spells repository ids; no more than
#: the engine itself accepts as a hub id (tests/test_lsp_trust.py checks this)
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")


def workspace_paths(server: Any) -> list[str]:
    """Local paths of the client's workspace folders and root (none before ``initialize``)."""
    try:
        workspace = server.workspace
    except RuntimeError:  # not initialized yet
        return []
    uris = [folder.uri for folder in workspace.folders.values()]
    if workspace.root_uri:
        uris.append(workspace.root_uri)
    paths = (fs_path(uri) for uri in uris)  # None for other schemes and URIs that cannot be paths
    return sorted({p for p in paths if p})


def _inside(path: str, folder: str) -> bool:
    try:
        return os.path.commonpath([path, folder]) == folder
    except ValueError:  # different drives (Windows)
        return False


def refusal(entry: str, folders: Iterable[str], cwd: str | None = None) -> str | None:
    """Why ``entry`` may not be trusted to run model code, or None if it may.

    ``folders`` are the workspace folders; ``cwd`` is where the engine would
    look for a relative path (the server's working directory by default).
    """
    if entry in BUNDLED_NAMES:
        return None
    expanded = os.path.expanduser(entry)
    cwd = cwd or os.getcwd()
    if os.path.isabs(expanded):
        real = os.path.realpath(expanded)
        for folder in folders:
            root = os.path.realpath(folder)
            if _inside(real, root):
                return (f"trustRemoteCode entry {entry!r} refused: {real} is inside the workspace folder "
                        f"{root}, and a repository must not grant its own code trust; copy the model "
                        "outside the workspace and list that absolute path in your user settings")
        return None
    on_disk = os.path.join(cwd, expanded)
    parts = expanded.split("/")
    if HUB_ID.fullmatch(expanded) and not any(p in (".", "..") for p in parts):
        if not os.path.lexists(on_disk):
            return None
        return (f"trustRemoteCode entry {entry!r} refused: besides a hub id it names "
                f"{os.path.realpath(on_disk)} relative to the server's working directory, which "
                "would be loaded instead; write the absolute path of the model you mean")
    return (f"trustRemoteCode entry {entry!r} refused: a relative path (it would be looked up from the "
            "server's working directory, which a repository can control); write an absolute path or a "
            "hub id (owner/name)")


def screen_trusted_models(settings: Settings, folders: Iterable[str],
                          cwd: str | None = None) -> tuple[Settings, list[str]]:
    """``settings`` with only the trustRemoteCode entries that may be trusted,
    and one message per refused entry."""
    folders = list(folders)
    kept: list[str] = []
    messages: list[str] = []
    for entry in settings.trust_remote_code:
        reason = refusal(entry, folders, cwd)
        if reason is None:
            kept.append(entry)
        else:
            messages.append(reason)
    if len(kept) == len(settings.trust_remote_code):
        return settings, messages
    return replace(settings, trust_remote_code=tuple(kept)), messages
