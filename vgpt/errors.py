"""The errors a user can cause, and how every `vgpt-*` command reports them.

Each module raises its own specific error (ConfigError, BundleError, VideoError, ...); all of them
derive from `VgptError`, so a command turns any of them, and the file-system errors a path option
can cause, into one `Error:` line and a non-zero exit instead of a traceback. This module imports
nothing heavy: `--help` must not pay for torch.
"""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Iterator


class VgptError(Exception):
    """Something the user can fix (a file, an option, an input); the message says what and how."""


# Path problems are the user's to fix too; anything else is a bug and keeps its traceback.
USER_OS_ERRORS = (FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError, PermissionError)
# And a disk that is full or mounted read-only (OSError itself: no subclass names these), with the fix.
STORAGE_ERRNOS = {
    errno.ENOSPC: "free some space or write somewhere else",
    errno.EDQUOT: "free some space within your quota or write somewhere else",
    errno.EFBIG: "the file system cannot hold a file that large; write somewhere else",
    errno.EROFS: "the file system is mounted read-only; write somewhere else",
}


def is_storage_error(err: BaseException) -> bool:
    """A write refused by the storage (full, over quota, read-only), not by a bug."""
    return isinstance(err, OSError) and err.errno in STORAGE_ERRNOS


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Inside a click command: a user error becomes `Error: <message>` and exit status 1."""
    import click

    try:
        yield
    except (VgptError, *USER_OS_ERRORS) as err:
        raise click.ClickException(_message(err)) from err
    except OSError as err:
        if not is_storage_error(err):
            raise
        raise click.ClickException(f"{_message(err)}: {STORAGE_ERRNOS[err.errno]}") from err


def _message(err: BaseException) -> str:
    if isinstance(err, OSError) and err.filename is not None and str(err.filename) not in str(err.strerror or ""):
        return f"{err.filename}: {err.strerror}"
    return str(err)
