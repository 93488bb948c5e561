"""The errors a user can cause, and how every `vgpt-*` command reports them.

Each module raises its own specific error (ConfigError, BundleError, VideoError, ...); all of them
derive from `VgptError`, so a command turns any of them, and the file-system errors a path option
can cause, into one `Error:` line and a non-zero exit instead of a traceback. This module imports
nothing heavy: `--help` must not pay for torch.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


class VgptError(Exception):
    """Something the user can fix (a file, an option, an input); the message says what and how."""


# Path problems are the user's to fix too; anything else is a bug and keeps its traceback.
USER_OS_ERRORS = (FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError, PermissionError)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Inside a click command: a user error becomes `Error: <message>` and exit status 1."""
    import click

    try:
        yield
    except (VgptError, *USER_OS_ERRORS) as err:
        raise click.ClickException(_message(err)) from err


def _message(err: BaseException) -> str:
    if isinstance(err, OSError) and err.filename is not None and str(err.filename) not in str(err.strerror or ""):
        return f"{err.filename}: {err.strerror}"
    return str(err)
