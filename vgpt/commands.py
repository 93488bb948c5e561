"""What every `vgpt-*` command shares: `--help`/`-h`, `--version`, validated resource options and
one way to report a user's error. Imports only click and torch-free vgpt modules: a command's `--help`
never pays for torch."""

from __future__ import annotations

import contextlib
import os
import re
import signal
from collections.abc import Callable, Iterator

import click

from vgpt import __version__
from vgpt.layout import LayoutRequest

MAX_SEED = 2**64 - 1


def command(fn: Callable) -> click.Command:
    """A click command with `-h/--help` and `--version`."""
    fn = click.version_option(__version__, "--version", prog_name="vgpt", message="%(prog)s %(version)s")(fn)
    return click.command(context_settings={"help_option_names": ["-h", "--help"]})(fn)


def default_threads() -> int:
    """PyTorch's CPU threads when --threads is not given: the cores other processes leave idle (by the
    1-minute load average), at least 1. At every core on a loaded 2-core machine (load average 11-16)
    PyTorch ran a 10-step clip of the bundled model in 8.1-20.5 s against 1.4-2.0 s at one thread: its
    threads wait for each other on cores the other processes hold."""
    cores = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except OSError:  # no load average on this platform
        return cores
    return max(1, min(cores, round(cores - load)))


def torch_threads(threads: int | None) -> int:
    """Set PyTorch's intra-op threads: `threads`, else `default_threads()`; returns the number set."""
    import torch

    n = threads or default_threads()
    torch.set_num_threads(n)
    return n


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
THREADS_HELP = "PyTorch's CPU threads (default: the cores the machine's load leaves idle, at least 1)."
POSITIVE = click.IntRange(min=1)
NON_NEGATIVE = click.IntRange(min=0)
SEED = click.IntRange(0, MAX_SEED)
# Classifier-free guidance: 1 is the conditional prediction alone (SamplerConfig refuses less), and the
# released model's useful range (1.5 in its script, 3 in the paper) ends far below 100.
GUIDANCE = click.FloatRange(1.0, 100.0)


class LayoutType(click.ParamType):
    """`--layout M,G[,HxW[px]]`: M history frames, G frames per clip, the latent (or pixel) size."""

    name = "M,G[,HxW[px]]"
    _FORM = re.compile(r"^(\d+),(\d+)(?:,(\d+)x(\d+)(px)?)?$")

    def convert(self, value, param, ctx):
        if isinstance(value, LayoutRequest):
            return value
        m = self._FORM.match(str(value).strip().lower())
        if not m:
            self.fail(f"{value!r}: expected M,G,HxW in latents, M,G,HxWpx in pixels or M,G (e.g. 4,4,8x8 or "
                      "4,4,64x64px)", param, ctx)  # fmt: skip
        M, G = int(m.group(1)), int(m.group(2))
        size = None if m.group(3) is None else (int(m.group(3)), int(m.group(4)))
        if min(M, G, *(size or (1,))) < 1:
            self.fail(f"{value!r}: every number must be at least 1", param, ctx)
        return LayoutRequest(M, G, size, bool(m.group(5)))


LAYOUT = LayoutType()


class BundleLayoutType(LayoutType):
    """`--layout` of a command that loads a bundle: M,G[,HxW[px]] as `LAYOUT`, or one of the bundle's layout
    names as its manifest spells them (m4-g4-8x8)."""

    name = "M,G[,HxW[px]]|NAME"
    _NAME = re.compile(r"^m\d+-g\d+-\d+x\d+$")

    def convert(self, value, param, ctx):
        if isinstance(value, str) and self._NAME.match(value.strip()):
            return value.strip()
        return super().convert(value, param, ctx)


BUNDLE_LAYOUT = BundleLayoutType()


def plural(n: int, word: str, many: str | None = None) -> str:
    """'1 clip', '2 clips'."""
    return f"{n} {word if n == 1 else (many or word + 's')}"


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (a supervisor stopping the process) ends a command like Ctrl-C: a KeyboardInterrupt, so
    that every writer removes or finishes what it was writing."""

    def interrupt(_signum, _frame):
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread (embedded): leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def bag_options(fn: Callable) -> Callable:
    """`--topic` and `--fps`: how a command reads ROS 2 bags (vgpt.bag)."""
    fn = click.option("--fps", type=click.FloatRange(min=0, min_open=True), default=None,
                      help="Bags: frames per second sampled from the header stamps (default: the rate the bundled "
                      "model was trained at, 10).")(fn)  # fmt: skip
    return click.option("--topic", default=None, help="Bags (.mcap, .db3, a bag folder): the image topic "
                        "(sensor_msgs/msg/Image or CompressedImage; default: the bag's only one).")(fn)  # fmt: skip
