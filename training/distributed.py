"""Scale-out on torch.distributed: processes started by torchrun, DDP or FSDP (FSDP2 fully_shard)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world: int
    local_rank: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def setup() -> DistInfo:
    """Join the process group that torchrun describes in the environment (NCCL on GPUs, gloo on CPUs)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available()
    device = torch.device(f"cuda:{local_rank}") if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    rank = dist.get_rank() if dist.is_initialized() else 0
    return DistInfo(rank=rank, world=world, local_rank=local_rank, device=device)


def launched(run, config):
    """run(config, info) inside the process group torchrun describes (or in this one process)."""
    info = setup()
    try:
        return run(config, info)
    finally:
        teardown()


def teardown() -> None:
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def wrap(model: nn.Module, strategy: str, info: DistInfo) -> nn.Module:
    """DDP replicates the model; FSDP shards every decoder layer and the rest (for models that do not
    fit one GPU). A single process trains the bare model."""
    if not info.enabled:
        return model
    if strategy == "fsdp":
        from torch.distributed.fsdp import fully_shard

        for layer in model.llm.layers:
            fully_shard(layer)
        fully_shard(model)
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [info.local_rank] if info.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def average_gradients(model: nn.Module, info: DistInfo) -> None:
    """All-reduce the gradients of an unwrapped model to their mean over the ranks: data parallelism for
    trainers whose step makes several forward calls of one model (DDP's hooks expect one)."""
    if not info.enabled:
        return
    for p in model.parameters():
        if p.grad is not None:
            dist.all_reduce(p.grad)  # a sum: gloo has no AVG
            p.grad /= info.world
