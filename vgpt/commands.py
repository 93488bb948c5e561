"""What every `vgpt-*` command shares: `--help`/`-h`, `--version`, validated resource options and
one way to report a user's error. Imports only click: a command's `--help` never pays for torch."""

from __future__ import annotations

import os
from collections.abc import Callable

import click

from vgpt import __version__

MAX_SEED = 2**64 - 1


def command(fn: Callable) -> click.Command:
    """A click command with `-h/--help` and `--version`."""
    fn = click.version_option(__version__, "--version", prog_name="vgpt", message="%(prog)s %(version)s")(fn)
    return click.command(context_settings={"help_option_names": ["-h", "--help"]})(fn)


def max_threads() -> int:
    return 4 * (os.cpu_count() or 1)


class Threads(click.ParamType):
    """CPU threads: 1 .. 4 x the cores (more only thrashes, and thousands start thousands of threads)."""

    name = "threads"

    def convert(self, value, param, ctx):
        try:
            n = int(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a whole number of threads", param, ctx)
        if not 1 <= n <= max_threads():
            self.fail(f"{n} threads: use 1 .. {max_threads()} (4 x the {os.cpu_count()} cores)", param, ctx)
        return n


THREADS = Threads()
POSITIVE = click.IntRange(min=1)
NON_NEGATIVE = click.IntRange(min=0)
SEED = click.IntRange(0, MAX_SEED)
# Classifier-free guidance: 1 is the conditional prediction alone (SamplerConfig refuses less), and the
# released model's useful range (1.5 in its script, 3 in the paper) ends far below 100.
GUIDANCE = click.FloatRange(1.0, 100.0)


def plural(n: int, word: str, many: str | None = None) -> str:
    """'1 clip', '2 clips'."""
    return f"{n} {word if n == 1 else (many or word + 's')}"
