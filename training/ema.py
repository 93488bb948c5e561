"""An exponential moving average of the trained weights.

Diffusion models sample much sharper from averaged weights than from the last optimizer step's, which
carry the step's noise (the small models we train from scratch in a few thousand steps show it most).
The average lives beside the parameters (sharded like them under FSDP2) and is saved whole.
"""

from __future__ import annotations

import torch


def _full(t: torch.Tensor) -> torch.Tensor:
    """A whole tensor on the CPU: an FSDP2 shard is gathered (a collective: every rank calls it)."""
    return (t.full_tensor() if hasattr(t, "full_tensor") else t).detach().to("cpu", torch.float32).clone()


class WeightAverage:
    """`update()` after each optimizer step: avg <- decay * avg + (1 - decay) * param."""

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"WeightAverage: decay={decay} must be in (0, 1)")
        self.decay = decay
        self.names = [n for n, _ in model.named_parameters()]
        self.params = [p for _, p in model.named_parameters()]
        self.average = [p.detach().to(torch.float32).clone() for p in self.params]

    @torch.no_grad()
    def update(self) -> None:
        torch._foreach_lerp_(self.average, [p.detach().to(torch.float32) for p in self.params], 1.0 - self.decay)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Whole fp32 tensors by parameter name (every rank calls it under FSDP2)."""
        return {n: _full(a) for n, a in zip(self.names, self.average, strict=True)}

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        missing = sorted(set(self.names) - set(state))
        if missing:
            raise KeyError(f"weight average: the checkpoint lacks {missing[:3]}{'...' if len(missing) > 3 else ''}")
        for i, (name, p) in enumerate(zip(self.names, self.params, strict=True)):
            full = state[name].to(p.device, torch.float32)
            if hasattr(p, "device_mesh"):  # an FSDP2 parameter: keep only this rank's shard, placed like it
                from torch.distributed.tensor import distribute_tensor

                full = distribute_tensor(full, p.device_mesh, p.placements)
            self.average[i] = full.clone()
