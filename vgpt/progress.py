"""Progress bars for the long phases of every command (tqdm: rate and ETA).

A bar is always an object, shown only when asked for and when its output is a terminal (tqdm's
`disable=None`), so code never branches on whether a bar exists: `bar.update(1)` always works.
"""

from __future__ import annotations

import os


def progress_bar(total: int | None, desc: str, unit: str, enabled: bool = True, initial: int = 0):
    """A tqdm bar; `enabled=False` (--no-progress) or a non-terminal output hides it.

    VGPT_PROGRESS=1 shows it on any output (the tests use it to run the default, visible path)."""
    from tqdm import tqdm

    forced = os.environ.get("VGPT_PROGRESS") == "1"
    disable = not enabled or (None if not forced else False)
    return tqdm(total=total, initial=initial, desc=desc, unit=unit, dynamic_ncols=True, disable=disable)
