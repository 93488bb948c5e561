"""matplotlib for the figures the commands write (vgpt-eval --plot, vgpt-bench --plot), imported lazily."""

from __future__ import annotations

import logging


def pyplot(extra: str = "bench"):
    """matplotlib.pyplot on the file-only Agg backend. matplotlib's one-time "building the font cache"
    warning is kept off the screen: it is no problem of the user's, and the command says what it wrote."""
    font_log = logging.getLogger("matplotlib.font_manager")
    level = font_log.level
    font_log.setLevel(logging.ERROR)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise ImportError(f"--plot needs matplotlib: pip install 'vgpt[{extra}]'") from err
    finally:
        font_log.setLevel(level)
    return plt
