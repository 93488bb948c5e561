"""vgpt.calibration: FP8/INT8 post-training quantization (calibration data, policies, ModelOpt PTQ and its
Q/DQ export, verification, the accuracy report); `quantizer.ModelOptQuantizer` is what `export_bundle` runs."""
