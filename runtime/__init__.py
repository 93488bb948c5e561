"""vgpt.runtime: the embeddable predictor and its backends (runtime issue); never imports training."""
