"""File integrity at load: a model file whose bytes changed is never run.

Every artifact's manifest records the size and sha256 of its files. `check_file` is the one check of
such a record (export bundles and engine folders alike); `verify_file` compares the hash,
reading it once in 1 MiB chunks, and remembers the verdict by (path, size, modification time) in
`$VGPT_CACHE/verified-files.json`, so that a warm start re-hashes nothing while any write to the
file (which changes its modification time) makes the next load hash it again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
from pathlib import Path

_LOCK = threading.Lock()


def cache_dir() -> Path:
    return Path(os.environ.get("VGPT_CACHE", Path.home() / ".cache" / "vgpt"))


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def canonical_sha256(data: dict, exclude: str) -> str:
    """sha256 of a JSON document in canonical form (sorted keys, no spaces), without field `exclude`:
    what a manifest records about itself so that an edited manifest is recognised."""
    body = {k: v for k, v in data.items() if k != exclude}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _state_file() -> Path:
    return cache_dir() / "verified-files.json"


def _read_state() -> dict:
    with contextlib.suppress(OSError, ValueError):
        state = json.loads(_state_file().read_text())
        if isinstance(state, dict):
            return state
    return {}  # missing or damaged: only costs a re-hash


def verify_file(path: str | os.PathLike, sha256: str) -> bool:
    """Whether `path` holds exactly the bytes whose sha256 is `sha256`."""
    path = Path(path).resolve()
    stat = path.stat()
    key, stamp = str(path), [stat.st_size, stat.st_mtime_ns, sha256]
    with _LOCK:
        if _read_state().get(key) == stamp:
            return True
    if sha256_file(path) != sha256:
        return False
    with _LOCK, contextlib.suppress(OSError):
        from vgpt.atomic import atomic_file

        state = _read_state()
        state[key] = stamp
        with atomic_file(_state_file(), "w") as f:
            json.dump(state, f)
    return True


def check_file(path: str | os.PathLike, size: int, sha256: str, error: type[Exception], fix: str,
               verify_hash: bool = True) -> None:  # fmt: skip
    """Refuse `path` unless it is present with the recorded `size` and (with `verify_hash`) `sha256`;
    `error` carries the message, which ends with `fix` (how to rebuild the artifact)."""
    path = Path(path)
    if not path.is_file():
        raise error(f"{path} is missing; {fix}")
    found = path.stat().st_size
    if found != size:
        raise error(f"{path} has {found} bytes, the manifest says {size}: truncated or replaced; {fix}")
    if verify_hash and not verify_file(path, sha256):
        raise error(f"{path} does not match the sha256 its manifest records: the file was changed or damaged; {fix}")
