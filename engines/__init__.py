"""vgpt.engines: TensorRT engine builds from export bundles (TensorRT issue); imports tensorrt lazily."""
