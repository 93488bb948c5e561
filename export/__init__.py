"""vgpt.export: static per-layout ONNX graphs (prefill, denoise step, codec) with manifests.

Built by the export issue on top of `vgpt.predictors.inference_calls`, whose constant forward calls
(masks, positions, LongRoPE tables) are what the graphs bake in.
"""
