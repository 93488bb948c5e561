"""Write every output atomically, with the usual permissions: to a temporary name in the same folder,
then rename. Nothing half-written is ever left under the final name, and what appears there is
readable as any file the user creates is (0666 / 0777 less the umask), not 0600 as mkstemp makes it.

A temporary's name carries the id of the process writing it (`.NAME.PID-XXXXXXXX.tmp`), so that a writer
killed before it could clean up (SIGKILL, a power cut) leaves nothing for good: the next writer of the
same path in that folder removes the temporaries whose process is gone (`remove_stale`), and never
those of a writer still running."""

from __future__ import annotations

import contextlib
import fnmatch
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def usual_permissions(path: Path) -> None:
    """Files 0666 and folders 0777, less the umask, for `path` and everything under it."""
    mask = _umask()
    paths = [path, *path.rglob("*")] if path.is_dir() else [path]
    for p in paths:
        if not p.is_symlink():
            os.chmod(p, (0o777 if p.is_dir() else 0o666) & ~mask)


def _prefix(name: str) -> str:
    return f".{name}.{os.getpid()}-"


_STALE = re.compile(r"\.(?P<name>.+)\.(?P<pid>\d+)-[^/]*\.(tmp|old)")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_stale(folder: str | os.PathLike, names: str = "*") -> list[Path]:
    """Remove the temporaries that writers of the paths `names` (an fnmatch pattern: "*" for any) left
    in `folder` when they were killed: those whose process no longer runs. Returns what was removed."""
    removed = []
    with contextlib.suppress(OSError):  # a folder that is missing or cannot be listed has nothing to clean
        for entry in Path(folder).glob(".*"):
            m = _STALE.fullmatch(entry.name)
            if m is None or not fnmatch.fnmatchcase(m["name"], names):
                continue
            if int(m["pid"]) == os.getpid() or _alive(int(m["pid"])):
                continue
            with contextlib.suppress(OSError):  # read-only, or removed by another writer meanwhile
                shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
                removed.append(entry)
    return removed


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling path (same suffix, nothing there yet) for a writer that wants a file
    name; on success it replaces `path`."""
    path = Path(os.path.abspath(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(path.parent, glob_escape(path.name))
    fd, tmp = tempfile.mkstemp(prefix=_prefix(path.name), suffix=f"{path.suffix}.tmp"[-32:], dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        usual_permissions(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, mode: str = "wb") -> Iterator:
    """Open a temporary sibling of `path` for writing; it replaces `path` only on success."""
    with atomic_path(path) as tmp, open(tmp, mode) as f:
        yield f


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling folder; on success it becomes `path`.

    An existing non-empty `path` is replaced only with overwrite=True, and only after the new
    folder is complete.
    """
    given, path = path, Path(os.path.abspath(path))  # "." and "a/.." name their folder
    if path == path.parent or path == Path.cwd() or path in Path.cwd().parents:
        raise IsADirectoryError(f"{given} is the current folder or one above it, which cannot be replaced; "
                                "name a new folder")  # fmt: skip
    if path.exists() and (not path.is_dir() or any(path.iterdir())) and not overwrite:
        raise FileExistsError(f"{given} exists and is not empty; choose another path, or replace it with --force")
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"{given} is a file, not a folder; choose another path")
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(path.parent, glob_escape(path.name))
    tmp = Path(tempfile.mkdtemp(prefix=_prefix(path.name), suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        usual_permissions(tmp)
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=_prefix(path.name), suffix=".old", dir=path.parent))
            os.replace(path, old / "x")
            os.replace(tmp, path)
            shutil.rmtree(old)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def glob_escape(name: str) -> str:
    """`name` as an fnmatch pattern that matches only itself."""
    return re.sub(r"([*?[])", r"[\1]", name)


class StagedWriter:
    """A writer whose output appears only when finished: `close()` moves it into place, `abort()` leaves
    nothing. As a context manager it closes when the block ends normally and aborts when it raises."""

    def close(self):
        raise NotImplementedError

    def abort(self) -> None:
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()
