import pytest

pytest.importorskip("modelopt.torch.quantization")
pytest.importorskip("onnxruntime")
