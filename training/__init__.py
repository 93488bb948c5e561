"""vgpt.training: next-clip-diffusion training, video data and vgpt-train (training issue)."""
