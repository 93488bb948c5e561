"""vgpt.cli: the commands, the top layer. Each `vgpt-*` command (and `python -m vgpt.cli.train`, torchrun's
entry, `python -m vgpt.cli.gpu_check`, `python -m vgpt.cli.bench.cpp`) lives here and may import any vgpt
package; no library package imports this one. Command modules import click and torch-free modules at the
top and the rest inside the command, so that `--help` never pays for torch."""
