"""Named precision policies: exactly the listed layers get enabled ModelOpt quantizers."""

import pytest
import torch

from tests.conftest import random_model
from vgpt.calibration.policy import POLICIES, get_policy
from vgpt.calibration.quantize import quantize_model
from vgpt.config import get_preset


def _quantized_layers(policy: str, precision: str) -> tuple[set[str], dict]:
    model = random_model(get_preset("tiny"))
    x = torch.randn(1, 4, 4, 4)

    def loop(m):  # calibration only needs every layer to see some input once
        with torch.no_grad():
            for module in m.modules():
                if isinstance(module, torch.nn.Linear):
                    module(torch.randn(2, module.in_features))
                elif isinstance(module, torch.nn.Conv2d):
                    module(x)

    summary = quantize_model(model, precision, get_policy(policy), loop)
    from modelopt.torch.quantization.nn import TensorQuantizer

    enabled = {n.rsplit(".", 1)[0] for n, m in model.named_modules() if isinstance(m, TensorQuantizer) and m.is_enabled}
    return enabled, summary


@pytest.mark.parametrize("precision", ["fp8", "int8"])
def test_backbone_policy_quantizes_every_decoder_linear_and_nothing_else(precision):
    enabled, summary = _quantized_layers("backbone", precision)
    names = ("self_attn.qkv_proj", "self_attn.o_proj", "mlp.gate_up_proj", "mlp.down_proj")
    expected = {f"llm.layers.{i}.{name}" for i in range(get_preset("tiny").num_hidden_layers) for name in names}
    assert enabled == expected
    assert summary["quantized_layers"] == len(expected)
    # The embedders, time tokens and output head stay in high precision (the policy's `keep`).
    for kept in ("x_embedder.proj", "input_x_embedder.proj", "final_layer.linear", "final_layer.adaLN_modulation.1",
                 "t_embedder.mlp.0", "time_token.mlp.2"):  # fmt: skip
        assert kept in summary["kept_layers"]


def test_mlp_policy_keeps_attention_in_high_precision():
    enabled, _ = _quantized_layers("mlp", "fp8")
    assert enabled and all(".mlp." in n for n in enabled)


def test_policy_config_formats_and_errors():
    fp8 = POLICIES["backbone"].quant_config("fp8")["quant_cfg"]
    int8 = POLICIES["backbone"].quant_config("int8")["quant_cfg"]
    assert fp8[0] == {"quantizer_name": "*", "enable": False}  # everything off unless listed
    assert {e["cfg"]["num_bits"] for e in fp8 if "cfg" in e} == {(4, 3)}
    assert {e["cfg"]["axis"] for e in int8 if "cfg" in e and "weight" in e["quantizer_name"]} == {0}
    # Exclusions come after the inclusions, so that they win.
    last_enable = max(i for i, e in enumerate(fp8) if "cfg" in e)
    assert all(e.get("enable") is False for e in fp8[last_enable + 1 :])
    with pytest.raises(ValueError, match="choose one of"):
        get_policy("everything")
    with pytest.raises(ValueError, match="fp8"):
        POLICIES["backbone"].quant_config("int4")
