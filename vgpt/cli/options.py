"""Options the commands share that read the bundled model's files (its defaults.json for help texts), kept
out of vgpt.commands, which library modules import too: reading them costs only the commands' start-up."""

from __future__ import annotations

import json
from collections.abc import Callable

import click

from vgpt.default_model import BUNDLED_MODELS, DEFAULT_DIR, SETTINGS, Defaults

# The bundled model's sampler, for help texts (read from its defaults.json, torch-free).
BUNDLED = Defaults.from_settings(json.loads((DEFAULT_DIR / SETTINGS).read_text()))


def model_option(what: str) -> Callable:
    """`--model teacher|student|gpdit`: which bundled model a command uses."""
    return click.option(
        "--model",
        "model_name",
        type=click.Choice(list(BUNDLED_MODELS)),
        default=None,
        help=f"Which bundled model {what}: the teacher ({BUNDLED.steps} steps x 2 branches), its distilled "
        "student (K steps x 1 branch) or the GPDiT model (exact rolling window), where shipped. Default: the "
        "student once its recorded figures at every horizon are at least the teacher's, else the teacher.",
    )
