"""vgpt-cache: what vgpt keeps in its cache folder, and clearing it."""

from __future__ import annotations

import click

from vgpt import __version__
from vgpt.commands import plural
from vgpt.errors import user_errors


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="vgpt", message="%(prog)s %(version)s")
def cache_main() -> None:
    """What vgpt keeps in its cache folder ($VGPT_CACHE, default ~/.cache/vgpt): exports made on first use
    of a checkpoint or of the bundled model, calibration sets, checked file hashes."""


@cache_main.command("list")
def cache_list() -> None:
    """Each entry with its size and what it was made from, largest first."""
    from vgpt.cache import cache_entries
    from vgpt.integrity import cache_dir

    entries = cache_entries()
    for entry in entries:
        click.echo(f"{entry.bytes / 1e6:9.1f} MB  {entry.kind:<17} {entry.path.name}  {entry.source}")
    total = sum(e.bytes for e in entries)
    click.echo(f"{plural(len(entries), 'entry', 'entries')}, {total / 1e6:.1f} MB in {cache_dir()}")


@cache_main.command("clear")
def cache_clear() -> None:
    """Remove every entry vgpt made (nothing else in the folder), except exports in progress. The next
    run exports or calibrates again."""
    from vgpt.cache import clear_cache
    from vgpt.integrity import cache_dir

    with user_errors():
        removed, in_use = clear_cache()
    for entry in in_use:
        click.echo(f"kept {entry.path}: another process is exporting it")
    freed = sum(e.bytes for e in removed)
    click.echo(f"removed {plural(len(removed), 'entry', 'entries')} ({freed / 1e6:.1f} MB) from {cache_dir()}")
