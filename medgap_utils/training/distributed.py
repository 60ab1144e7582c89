"""Data parallelism through ``torchrun``: process group, sharding, helpers.

``torchrun --nproc_per_node N -m medgap_utils train ...`` sets ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK`` and ``MASTER_ADDR/PORT``; :func:`init_distributed`
reads them and joins the process group (NCCL on GPUs, gloo on CPU). Every
process sees the same shuffled order and takes its own contiguous slice of
each global batch, so the gathered global batch is the batch that a single
process would draw (like ``DistributedSampler`` with per-batch blocks).
"""

from __future__ import annotations

import dataclasses
import logging
import os

import torch
import torch.distributed as dist

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class DistributedContext:
    """Where this process sits in the job: rank, world size and device."""

    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        """True for the process that logs and writes files (rank 0)."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        """True when more than one process trains."""
        return self.world_size > 1


def init_distributed(device: str | torch.device | None = None) -> DistributedContext:
    """Join the ``torchrun`` process group if there is one and return this process's context.

    A process group initialized by the caller is used as it is. Without one
    and with ``WORLD_SIZE`` unset or 1, training runs in this process alone.
    """
    cuda = torch.cuda.is_available() if device is None else torch.device(device).type == "cuda"
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if not dist.is_initialized() and world_size > 1:
        backend = "nccl" if cuda else "gloo"
        dist.init_process_group(backend=backend)
        logger.info("joined process group: rank %d of %d (%s)", dist.get_rank(), dist.get_world_size(), backend)
    if dist.is_initialized():
        rank, world_size = dist.get_rank(), dist.get_world_size()
    else:
        rank, world_size = 0, 1
    if device is not None:
        chosen = torch.device(device)
    elif cuda:
        chosen = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    else:
        chosen = torch.device("cpu")
    if chosen.type == "cuda":
        torch.cuda.set_device(chosen)
    return DistributedContext(rank=rank, world_size=world_size, device=chosen)


def barrier(context: DistributedContext) -> None:
    """Wait for every process (no-op for one process)."""
    if context.enabled:
        dist.barrier()


def epoch_batches(num_items: int, batch_size: int, seed: int, epoch: int,
                  context: DistributedContext) -> list[torch.Tensor]:
    """Return this process's index batches for one epoch.

    The order is a permutation seeded by ``(seed, epoch)``, so it is the same
    in every process and after a resume. Global batches of ``batch_size``
    are cut from it (the last partial one is dropped); each process takes
    its contiguous ``batch_size / world_size`` block of every global batch.

    Raises:
        ValueError: ``batch_size`` not divisible by the world size, or fewer items than one batch.
    """
    if batch_size % context.world_size:
        raise ValueError(f"Invalid train.batch_size={batch_size}: with {context.world_size} processes it must "
                         f"be a multiple of {context.world_size}.")
    if num_items < batch_size:
        raise ValueError(f"Invalid train.batch_size={batch_size}: the training split has only {num_items} "
                         "pairs; use a smaller batch.")
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    order = torch.randperm(num_items, generator=generator)
    local = batch_size // context.world_size
    batches = []
    for start in range(0, num_items - batch_size + 1, batch_size):
        block = start + context.rank * local
        batches.append(order[block:block + local])
    return batches
