"""Progress for the long phases of every command: a tqdm bar (rate and ETA) on a terminal, and
periodic log lines where the output is no terminal (a log file, CI, a pipe), so that no phase of more
than a few seconds is silent there.

A bar is always an object, so code never branches on whether one is shown: `bar.update(1)` always
works. Log lines printed while a bar is drawn go above it (`console_logging`), not glued to it.
"""

from __future__ import annotations

import logging
import os
import sys
import time

log = logging.getLogger(__name__)

# Seconds between two progress lines when the output is no terminal.
LOG_EVERY_S = 10.0


def progress_bar(total: int | None, desc: str, unit: str, enabled: bool = True, initial: int = 0):
    """A tqdm bar on a terminal; periodic log lines on other outputs; nothing with `enabled=False`
    (--no-progress).

    VGPT_PROGRESS=1 shows the bar on any output (the tests use it to run the default, visible path)."""
    from tqdm import tqdm

    forced = os.environ.get("VGPT_PROGRESS") == "1"
    if enabled and not forced and not sys.stderr.isatty():
        return LoggedProgress(total, desc, unit, initial)
    return tqdm(total=total, initial=initial, desc=desc, unit=unit, dynamic_ncols=True, disable=not enabled)


class LoggedProgress:
    """tqdm's interface (update, set_postfix, close, a context manager) as a log line every
    `every` seconds: "train: 120/4000 step (3.2 step/s, about 20 min left)"."""

    def __init__(self, total: int | None, desc: str, unit: str, initial: int = 0, every: float = LOG_EVERY_S,
                 clock=time.monotonic) -> None:  # fmt: skip
        self.total, self.desc, self.unit, self.every, self.clock = total, desc, unit, every, clock
        self.n = self._start = initial
        self._started = self._last = clock()
        self._postfix = ""
        self._logged, self._logged_n = False, initial

    def update(self, n: int = 1) -> None:
        self.n += n
        if self.clock() - self._last >= self.every:
            self._log()

    def set_postfix(self, **values) -> None:
        self._postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def close(self) -> None:
        if self._logged and self.n != self._logged_n:  # the end of a phase that reported its progress
            self._log()

    def __enter__(self) -> LoggedProgress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def line(self) -> str:
        elapsed = self.clock() - self._started
        rate = (self.n - self._start) / elapsed if elapsed > 0 else 0.0
        done = f"{self.n}/{self.total}" if self.total else f"{self.n}"
        parts = [f"{rate:.2f} {self.unit}/s"]
        if self.total and rate > 0 and self.n < self.total:
            parts.append(f"about {_duration((self.total - self.n) / rate)} left")
        if self._postfix:
            parts.append(self._postfix)
        return f"{self.desc}: {done} {self.unit} ({', '.join(parts)})"

    def _log(self) -> None:
        log.info("%s", self.line())
        self._last, self._logged, self._logged_n = self.clock(), True, self.n


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class _AboveTheBar(logging.Handler):
    """Writes each record to the stderr of the moment through tqdm.write, which clears a drawn bar,
    prints the line and draws the bar again."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm

        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:
            self.handleError(record)


def console_logging(fmt: str = "%(message)s", datefmt: str | None = None) -> None:
    """A command's logging: INFO to stderr, printed above any progress bar being drawn."""
    handler = _AboveTheBar()
    handler.setFormatter(logging.Formatter(fmt, datefmt))
    logging.basicConfig(level=logging.INFO, handlers=[handler])
