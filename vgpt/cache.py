"""What vgpt keeps in its cache folder (`$VGPT_CACHE`, default ~/.cache/vgpt), listed and cleared.

    exports/KEY/            a bundle exported on first use of a checkpoint (runtime.loading)
    exports/KEY.lock        held while KEY is exported (empty; kept, as a process may be waiting on it)
    exports/.KEY.*          the temporary folder of an export that was killed
    calibration/KEY/        a calibration set (calibration.data: data.safetensors + manifest.json)
    verified-files.json     the file hashes already checked (vgpt.integrity)

`vgpt-cache list|clear` is a thin CLI over `cache_entries` and `clear_cache`. Clearing removes only
what matches these names and contents, never anything else a user put there, and never an export
that another process holds the lock of (it is being written or about to be reused).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from vgpt.integrity import cache_dir

KEY = re.compile(r"[0-9a-f]{16,64}")  # the cache keys: truncated sha256 hex digests
LOCK_SUFFIX = ".lock"
VERIFIED = "verified-files.json"


@dataclass(frozen=True)
class CacheEntry:
    kind: str  # "export", "calibration", "unfinished export" or "file hashes"
    path: Path
    bytes: int
    source: str  # what it was made from, where its manifest says


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def _manifest(folder: Path) -> dict | None:
    try:
        data = json.loads((folder / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def cache_entries(root: Path | None = None) -> list[CacheEntry]:
    """Every entry vgpt made under `root` (default: the cache folder), largest first."""
    root = cache_dir() if root is None else Path(root)
    found: list[CacheEntry] = []
    exports, calibration = root / "exports", root / "calibration"
    if exports.is_dir():
        for path in exports.iterdir():
            if path.is_dir() and KEY.fullmatch(path.name) and (manifest := _manifest(path)) is not None:
                source = str(manifest.get("sources", {}).get("checkpoint", "?"))
                found.append(CacheEntry("export", path, _size(path), source))
            elif path.is_dir() and path.name.startswith(".") and KEY.fullmatch(path.name[1:].split(".")[0]):
                found.append(CacheEntry("unfinished export", path, _size(path), "-"))
    if calibration.is_dir():
        for path in calibration.iterdir():
            manifest = _manifest(path) if path.is_dir() and KEY.fullmatch(path.name) else None
            if manifest is not None and (path / "data.safetensors").is_file():
                found.append(CacheEntry("calibration", path, _size(path), f"{manifest.get('clips', '?')} clips"))
    if (root / VERIFIED).is_file():
        found.append(CacheEntry("file hashes", root / VERIFIED, _size(root / VERIFIED), "-"))
    return sorted(found, key=lambda e: -e.bytes)


@contextlib.contextmanager
def _unlocked(entry: CacheEntry) -> Iterator[bool]:
    """Whether no process holds the entry's export lock; holds it meanwhile, so no export starts."""
    key = entry.path.name.lstrip(".").split(".")[0]
    lock = entry.path.parent / f"{key}{LOCK_SUFFIX}"
    if entry.kind not in ("export", "unfinished export") or not lock.is_file():
        yield True
        return
    with open(lock, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def clear_cache(root: Path | None = None) -> tuple[list[CacheEntry], list[CacheEntry]]:
    """Remove every entry of `cache_entries` except exports in progress: (removed, kept in use)."""
    removed, in_use = [], []
    for entry in cache_entries(root):
        with _unlocked(entry) as free:
            if not free:
                in_use.append(entry)
                continue
            if entry.path.is_dir():
                shutil.rmtree(entry.path)
            else:
                entry.path.unlink()
            removed.append(entry)
    return removed, in_use
