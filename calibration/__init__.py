"""vgpt.calibration: calibration data for FP8/INT8 post-training quantization (quantization issue)."""
