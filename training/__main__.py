"""`python -m vgpt.training` is `vgpt-train` (what torchrun launches)."""

from vgpt.training.cli import train_main

if __name__ == "__main__":
    train_main()
