"""vgpt: Video-GPT (next clip diffusion) from training to deployment.

Importing vgpt never imports onnx, onnxruntime, tensorrt or modelopt.
"""

from vgpt.config import PRESETS, ConfigError, Layout, ModelConfig, get_preset
from vgpt.model import VideoGPT

__all__ = ["PRESETS", "ConfigError", "Layout", "ModelConfig", "VideoGPT", "get_preset"]
__version__ = "0.1.0"
