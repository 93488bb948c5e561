import io
import logging
import sys

from vgpt.progress import LoggedProgress, console_logging, progress_bar


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_off_a_terminal_a_phase_logs_a_line_every_few_seconds_with_its_rate_and_eta(caplog):
    clock = Clock()
    caplog.set_level(logging.INFO, "vgpt.progress")
    with LoggedProgress(100, "accuracy report", "clip", every=10, clock=clock) as bar:
        for _ in range(100):
            clock.now += 0.5  # 2 clips/s: a line after every 20 clips
            bar.update(1)
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == "accuracy report: 20/100 clip (2.00 clip/s, about 40 s left)"
    assert len(lines) == 5 and lines[-1] == "accuracy report: 100/100 clip (2.00 clip/s)", "the end said once"
    caplog.clear()
    with LoggedProgress(3, "predict", "clip", every=10, clock=clock) as bar:
        clock.now += 12
        bar.update(1)  # logged
        clock.now += 3
        bar.update(2)  # not yet: the end is logged at close
    assert [r.getMessage() for r in caplog.records] == [
        "predict: 1/3 clip (0.08 clip/s, about 24 s left)",
        "predict: 3/3 clip (0.20 clip/s)",
    ]


def test_a_short_phase_logs_nothing(caplog):
    clock = Clock()
    caplog.set_level(logging.INFO, "vgpt.progress")
    with LoggedProgress(3, "predict", "clip", every=10, clock=clock) as bar:
        clock.now += 2
        bar.update(3)
    assert not caplog.records


def test_progress_on_a_pipe_is_log_lines_and_off_is_nothing(monkeypatch):
    monkeypatch.delenv("VGPT_PROGRESS", raising=False)
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # no terminal
    assert isinstance(progress_bar(10, "train", "step"), LoggedProgress)
    assert not isinstance(progress_bar(10, "train", "step", enabled=False), LoggedProgress)


def test_log_lines_go_above_a_drawn_bar_not_onto_it(monkeypatch):
    # Training's "step 50 loss ..." lines were written after the bar's text on the same line.
    from tqdm import tqdm

    stderr = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    root.handlers = []
    try:
        console_logging()
        bar = tqdm(total=4, desc="train", file=stderr, ncols=60)
        bar.update(1)
        logging.getLogger("vgpt.training.loop").info("step 1 loss 0.5")
        bar.close()
    finally:
        root.handlers, root.level = saved[0], saved[1]
    out = stderr.getvalue()
    assert "\rstep 1 loss 0.5\n" in out, repr(out)
