"""Reading files that may be hostile: a manifest and the names it gives.

A bundle, an engine folder or a checkpoint may come from anywhere. Two rules hold for every one of
them, in the Python runtime and in the C++ one (cpp/src/manifest.cpp):

- a JSON document is read only up to `MAX_DOCUMENT_BYTES`, must be UTF-8 and one JSON object, and its
  nesting is bounded: anything else is the caller's error (never a RecursionError or a 1 GB read);
- a file name a manifest gives is a plain name inside the manifest's own folder (no `/`, no `..`, no
  link that leads out of the folder); the error names the manifest's entry, never a fact about a file
  outside (whether it exists, its size).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

MAX_DOCUMENT_BYTES = 16 << 20  # the bundled model's manifest is 14 kB, a 40-layout export about 1 MB
MAX_DEPTH = 64  # our manifests nest 6 levels; the C++ reader refuses the same depth


def read_json_object(path: str | os.PathLike, error: type[Exception], fix: str,
                     max_bytes: int = MAX_DOCUMENT_BYTES) -> dict[str, Any]:  # fmt: skip
    """The JSON object in `path`; `error(message ending with fix)` for a document that is too large, not
    UTF-8, not JSON, nested deeper than MAX_DEPTH, or not an object. OSErrors (a missing file) pass."""
    return parse_json_object(read_document(path, error, fix, max_bytes), path, error, fix)


def read_document(path: str | os.PathLike, error: type[Exception], fix: str, max_bytes: int = MAX_DOCUMENT_BYTES,
                  ) -> bytes:  # fmt: skip
    """The bytes of `path`, refused (before they are read) beyond `max_bytes`."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size > max_bytes:
            raise error(f"{path} is {size} bytes, more than the {max_bytes} a manifest may have; {fix}")
        raw = f.read(max_bytes + 1)  # a file that grows while read is still capped
    if len(raw) > max_bytes:
        raise error(f"{path} is more than the {max_bytes} bytes a manifest may have; {fix}")
    return raw


def parse_json_object(raw: bytes, path: str | os.PathLike, error: type[Exception], fix: str) -> dict[str, Any]:
    """`raw` (the bytes of `path`) as one JSON object, with the checks of `read_json_object`."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise error(f"{path} is not UTF-8 text (byte {err.start}); {fix}") from err
    if _depth(text) > MAX_DEPTH:
        raise error(f"{path} nests its JSON deeper than {MAX_DEPTH} levels; {fix}")
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as err:
        raise error(f"{path} is not valid JSON ({err}); {fix}") from err
    if not isinstance(data, dict):
        raise error(f"{path} holds a JSON {type(data).__name__}, not an object; {fix}")
    return data


def _depth(text: str) -> int:
    """The deepest nesting of brackets outside strings (an upper bound of the JSON's depth)."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return 0  # too few brackets to nest too deep: skip the scan
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def plain_name(name: Any) -> bool:
    """Whether `name` is one path component: not empty, `.` or `..`, no separator, no NUL."""
    return (isinstance(name, str) and name not in ("", ".", "..") and "/" not in name and "\\" not in name
            and "\0" not in name)  # fmt: skip


def inside(folder: str | os.PathLike, name: str, error: type[Exception], what: str) -> Path:
    """`folder / name` for a plain `name` that does not lead out of `folder` through a link; else
    `error` naming `what` (the manifest's entry) and nothing about the target."""
    if not plain_name(name):
        raise error(f"{what} names {name!r}: a manifest may only name files inside its own folder (a plain "
                    "file name, no '/' or '..'); this file was crafted or damaged, do not load it")  # fmt: skip
    path = Path(folder) / name
    if path.is_symlink() and Path(folder).resolve() not in path.resolve().parents:
        raise error(f"{what}: {path} is a link that leads out of {folder}; copy the file into the folder instead")
    return path
