import os
import subprocess
import sys

import pytest

pytest.importorskip("matplotlib")


def test_matplotlibs_font_cache_note_stays_off_the_screen(tmp_path):
    # A fresh MPLCONFIGDIR makes matplotlib build its font cache, which it announces as a warning when
    # that takes over 5 s (a threading.Timer): here the timer fires at once, as on a slow first run.
    code = """
import logging, threading

class AtOnce:
    def __init__(self, interval, function):
        self.function = function
    def start(self):
        self.function()
    def cancel(self):
        pass

threading.Timer = AtOnce
logging.basicConfig()
from vgpt.plotting import pyplot
pyplot().figure()
"""
    env = {**os.environ, "MPLCONFIGDIR": str(tmp_path / "mpl")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "mpl").is_dir() and "font cache" not in done.stderr, done.stderr
