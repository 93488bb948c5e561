"""File integrity at load: a model file whose bytes changed is never run.

Every artifact's manifest records the size and sha256 of its files. `check_file` is the one check of
such a record (export bundles and engine folders alike); `verify_file` compares the hash, reading the
file in 1 MiB chunks at every load (the bundled model's 44 MB of graphs in 0.12 s on the 2-core
development machine, 0.55 s when it was loaded 6x over; 0.08 s with remembered verdicts; seconds to
create its ONNX Runtime sessions). A 3.8B model in fp16 (7.6 GB) takes seconds more: `trust_cache`.

With `trust_cache` (`vgpt-run --trust-cache`, `load_model(..., trust_cache=True)`) a verdict is
remembered in `$VGPT_CACHE/verified-files.json` and reused while the file's device, inode, size,
modification and status-change times are those it was verified with. The status-change time (ctime)
is set by the kernel on every write and cannot be set back (`cp -p`, `rsync -t` and `touch -d` keep
the modification time, not the ctime), so a verdict survives only while nobody wrote the file. What
no verdict can prove is bytes that changed without a write (bit rot under the file system): that is
the risk `trust_cache` accepts. The verdict file is read only when this user owns it and nobody else
may write it (the folder too); otherwise its verdicts are ignored and every file is hashed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
from pathlib import Path

from vgpt.atomic import atomic_file
from vgpt.untrusted import read_json_object

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


def _private(path: Path) -> bool:
    """`path` and its folder owned by this user and writable by no other (group write only for the
    user's own primary group, as umask 002 systems give every file): verdicts nobody else wrote."""

    def own(stat: os.stat_result) -> bool:
        group_ok = not stat.st_mode & 0o020 or stat.st_gid == os.getgid()
        return stat.st_uid == os.getuid() and not stat.st_mode & 0o002 and group_ok

    with contextlib.suppress(OSError):
        return own(os.stat(path)) and own(os.stat(path.parent))
    return False


def _read_state() -> dict:
    if not _private(_state_file()):
        return {}
    with contextlib.suppress(OSError, ValueError):
        return read_json_object(_state_file(), ValueError, "")
    return {}  # missing or damaged: only costs a re-hash, and the next verdict rewrites the file


def _stamp(stat: os.stat_result, sha256: str) -> list:
    return [stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, sha256]


def verify_file(path: str | os.PathLike, sha256: str, trust_cache: bool = False) -> bool:
    """Whether `path` holds exactly the bytes whose sha256 is `sha256`: hashed now, or (with
    `trust_cache`) a verdict remembered for this very file since its last write."""
    path = Path(path).resolve()
    key = str(path)
    if trust_cache:
        with _LOCK:
            if _read_state().get(key) == _stamp(path.stat(), sha256):
                return True
    stat = path.stat()
    if sha256_file(path) != sha256:
        return False
    if trust_cache:
        with _LOCK, contextlib.suppress(OSError):
            state = _read_state()
            state[key] = _stamp(stat, sha256)
            with atomic_file(_state_file(), "w") as f:
                json.dump(state, f)
    return True


def check_file(path: str | os.PathLike, size: int, sha256: str, error: type[Exception], fix: str,
               verify_hash: bool = True, trust_cache: bool = False) -> None:  # fmt: skip
    """Refuse `path` unless it is present with the recorded `size` and (with `verify_hash`) `sha256`;
    `error` carries the message, which ends with `fix` (how to rebuild the artifact). `path` is inside
    its artifact's folder (`vgpt.untrusted.inside`): the messages may name its size."""
    path = Path(path)
    if not path.is_file():
        raise error(f"{path} is missing; {fix}")
    found = path.stat().st_size
    if found != size:
        raise error(f"{path} has {found} bytes, the manifest says {size}: truncated or replaced; {fix}")
    if verify_hash and not verify_file(path, sha256, trust_cache):
        raise error(f"{path} does not match the sha256 its manifest records: the file was changed or damaged; {fix}")
