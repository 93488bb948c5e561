"""vgpt.runtime: the embeddable predictor and its backends; never imports vgpt.training."""

from vgpt.runtime.predictor import NotEnoughHistoryError, Prediction, VideoPredictor, load_predictor

__all__ = ["NotEnoughHistoryError", "Prediction", "VideoPredictor", "load_predictor"]
