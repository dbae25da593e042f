"""Catalog models on disk: where they live, whether they are complete, and how
they get there (``diffill models pull``) or go away (``diffill models rm``).

Files are kept in the ordinary Hugging Face cache (``HF_HUB_CACHE``, else
``HF_HOME/hub``, else ``~/.cache/huggingface/hub``) at the catalog's pinned
revision, so other tools find them too.  A pull:

1. lists the repository at that revision (the hub's own sizes and hashes),
   keeps only the files the catalog names (no ``*.py``: nothing to execute);
2. refuses before downloading anything when the free disk is too small;
3. fetches each missing file with ``huggingface_hub`` (its progress bars; a
   dropped connection resumes with an HTTP range request, and files already
   complete are not fetched again when an interrupted pull is rerun);
4. checks every file against the listing: SHA-256 for LFS files, the git blob
   hash for the others; a mismatch deletes the file and fails the pull.

The hub is whatever ``HF_ENDPOINT`` says (the tests point it at a local stand-in).
"""
from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from engine.catalog import CatalogModel
from engine.errors import EngineError, ModelNotFoundError
from engine.machine import GB, free_disk_gb

#: free disk kept beyond the download itself
DISK_MARGIN_GB = 0.5


class DownloadError(EngineError):
    """A pull failed (network, hub, permissions); the message says which file."""


class HashMismatchError(DownloadError):
    """A downloaded file does not have the hash the hub lists for it; it was deleted."""


class DiskSpaceError(DownloadError):
    """Not enough free disk for the files still to download; nothing was downloaded."""


@dataclass(frozen=True)
class RemoteFile:
    path: str
    size: int
    sha256: str | None  # LFS files
    blob_id: str  # git blob hash (checked when there is no sha256)


def cache_dir() -> Path:
    """The Hugging Face hub cache, read from the environment on every call."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME")
    xdg = Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")).expanduser()
    base = Path(home).expanduser() if home else xdg / "huggingface"
    return base / "hub"


def repo_dir(hub_id: str) -> Path:
    return cache_dir() / ("models--" + hub_id.replace("/", "--"))


def _commit(model: CatalogModel) -> str | None:
    """The commit the model is kept at: the pinned revision, or the one an unpinned pull recorded."""
    if model.revision:
        return model.revision
    ref = repo_dir(model.hub_id or "") / "refs" / "main"
    try:
        return ref.read_text().strip() or None
    except OSError:
        return None


def snapshot_dir(model: CatalogModel) -> Path | None:
    commit = _commit(model)
    return repo_dir(model.hub_id) / "snapshots" / commit if model.hub_id and commit else None


def is_complete(path: Path) -> bool:
    """A loadable checkpoint: config, a tokenizer, and every weight shard the index names."""
    if not (path / "config.json").is_file():
        return False
    if not any((path / name).is_file() for name in ("tokenizer.json", "vocab.json", "tokenizer.model")):
        return False
    index = path / "model.safetensors.index.json"
    if index.is_file():
        try:
            shards = set(json.loads(index.read_text())["weight_map"].values())
        except (OSError, ValueError, KeyError):
            return False
        return bool(shards) and all((path / shard).is_file() for shard in shards)
    return (path / "model.safetensors").is_file()


def is_downloaded(model: CatalogModel) -> bool:
    if model.bundled:
        return True
    path = snapshot_dir(model)
    return path is not None and is_complete(path)


def local_path(model: CatalogModel, label: str | None = None) -> Path:
    """The snapshot directory of a downloaded model; otherwise the one-line error that
    names the pull command (nothing is ever downloaded from here)."""
    path = snapshot_dir(model)
    if path is None or not is_complete(path):
        name = label or model.name
        raise ModelNotFoundError(f"{name} is not downloaded ({model.download_gb:.1f} GB): "
                                 f"run `diffill models pull {model.name}`")
    return path


# --- pull ------------------------------------------------------------------

def _endpoint() -> str | None:
    """The hub to use, read now (huggingface_hub reads ``HF_ENDPOINT`` only when imported)."""
    return os.environ.get("HF_ENDPOINT") or None


def _api():
    from huggingface_hub import HfApi

    return HfApi(endpoint=_endpoint())


def wanted(model: CatalogModel, listing: list[RemoteFile]) -> list[RemoteFile]:
    """The files of the listing the catalog asks for (its glob patterns)."""
    return [f for f in listing if any(fnmatch.fnmatchcase(f.path, pat) for pat in model.files)]


def remote_files(model: CatalogModel, commit: str) -> list[RemoteFile]:
    from huggingface_hub.hf_api import RepoFile

    files = []
    for entry in _api().list_repo_tree(model.hub_id, revision=commit, recursive=True):
        if isinstance(entry, RepoFile):
            sha = entry.lfs.sha256 if entry.lfs is not None else None
            files.append(RemoteFile(entry.path, int(entry.size), sha, entry.blob_id))
    return files


def file_matches(path: Path, remote: RemoteFile) -> bool:
    """Whether the local file has the hub's hash (and size)."""
    try:
        if path.stat().st_size != remote.size:
            return False
        digest = hashlib.sha256() if remote.sha256 else hashlib.sha1(f"blob {remote.size}\0".encode())
        with path.open("rb") as stream:
            for chunk in iter(lambda: stream.read(1 << 20), b""):
                digest.update(chunk)
    except OSError:
        return False
    return digest.hexdigest() == (remote.sha256 or remote.blob_id)


def _discard(path: Path) -> None:
    """Delete a cached file: the blob the snapshot link points to, and the link."""
    try:
        target = path.resolve()
        path.unlink(missing_ok=True)
        if target != path:
            target.unlink(missing_ok=True)
    except OSError:
        pass


def _resolve_commit(model: CatalogModel) -> str:
    if model.revision:
        return model.revision
    info = _api().model_info(model.hub_id)
    if not info.sha:
        raise DownloadError(f"{model.hub_id}: the hub did not say which commit main is")
    return info.sha


def pull(model: CatalogModel, *, out: IO[str] | None = None) -> Path:
    """Download ``model`` into the cache at its pinned revision and verify it.  Returns the
    snapshot directory.  Raises ``DiskSpaceError``, ``HashMismatchError``, ``DownloadError``."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.utils import HfHubHTTPError

    out = out or sys.stderr
    if model.bundled or not model.hub_id:
        raise DownloadError(f"{model.name} is bundled with diffill: nothing to pull")
    hub_id: str = model.hub_id
    try:
        commit = _resolve_commit(model)
        files = wanted(model, remote_files(model, commit))
    except HfHubHTTPError as exc:
        raise DownloadError(f"{model.hub_id}@{model.revision or 'main'}: the hub refused the listing "
                            f"({_short(exc)})") from None
    except (OSError, ConnectionError) as exc:
        raise DownloadError(f"{model.hub_id}: cannot reach the hub ({_short(exc)})") from None
    if not files:
        raise DownloadError(f"{model.hub_id}@{commit}: none of the catalog's files are in the repository")
    snapshot = repo_dir(hub_id) / "snapshots" / commit
    todo = [f for f in files if not file_matches(snapshot / f.path, f)]
    need = sum(f.size for f in todo) / GB
    free = free_disk_gb(cache_dir())
    if need + DISK_MARGIN_GB > free:
        raise DiskSpaceError(f"{model.name} needs {need:.2f} GB more disk (plus {DISK_MARGIN_GB} GB margin) but "
                             f"{cache_dir()} has {free:.2f} GB free: make room, or set HF_HUB_CACHE to a larger disk")
    for remote in todo:  # a damaged copy would otherwise be taken as already downloaded
        if (snapshot / remote.path).exists():
            _discard(snapshot / remote.path)
    print(f"pulling {model.name} ({model.hub_id}@{commit[:12]}): {len(todo)} of {len(files)} files, "
          f"{need:.2f} GB", file=out, flush=True)
    for number, remote in enumerate(todo, start=1):
        print(f"[{number}/{len(todo)}] {remote.path} ({remote.size / 1e6:.1f} MB)", file=out, flush=True)
        try:
            local = Path(hf_hub_download(hub_id, remote.path, revision=commit, cache_dir=cache_dir(),
                                         endpoint=_endpoint()))
        except HfHubHTTPError as exc:
            raise DownloadError(f"{remote.path}: download failed ({_short(exc)})") from None
        except (OSError, ConnectionError) as exc:
            raise DownloadError(f"{remote.path}: download failed ({_short(exc)}); run the pull again to "
                                "resume (finished files are kept)") from None
        if not file_matches(local, remote):
            _discard(local)
            kind = "SHA-256" if remote.sha256 else "git hash"
            raise HashMismatchError(f"{remote.path}: the downloaded file does not match the hub's {kind}; "
                                    "it was deleted and the pull refused")
    if not is_complete(snapshot):
        raise DownloadError(f"{hub_id}@{commit[:12]}: the catalog's files do not make a loadable checkpoint "
                            "(config, tokenizer and every weight shard); the catalog entry needs fixing")
    if not model.revision:
        # hf_hub_download was given the commit, so it recorded no ref: remember which one main was
        ref = repo_dir(hub_id) / "refs" / "main"
        ref.parent.mkdir(parents=True, exist_ok=True)
        ref.write_text(commit)
        print(f"note: {model.name} has no pinned revision in the catalog; got commit {commit}", file=out)
    print(f"{model.name} is ready ({snapshot})", file=out, flush=True)
    return snapshot


def _short(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else exc.__class__.__name__


# --- rm --------------------------------------------------------------------

def remove(model: CatalogModel) -> float:
    """Delete the model's snapshot (and blobs no other revision uses); returns GB freed."""
    from huggingface_hub import scan_cache_dir

    commit = _commit(model)
    if model.bundled or not model.hub_id or not commit:
        return 0.0
    if not repo_dir(model.hub_id).is_dir():
        return 0.0
    cache = scan_cache_dir(cache_dir())
    ours = [rev.commit_hash for repo in cache.repos if repo.repo_id == model.hub_id
            for rev in repo.revisions if rev.commit_hash == commit]
    if not ours:
        return 0.0
    strategy = cache.delete_revisions(*ours)
    strategy.execute()
    return strategy.expected_freed_size / GB
