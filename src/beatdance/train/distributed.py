"""Data-parallel training under ``torchrun``: the process group, each rank's share of a batch, and the
gather of embeddings with their gradients.

``torchrun --nproc_per_node=N -m beatdance train ...`` starts N processes with RANK, WORLD_SIZE, LOCAL_RANK,
LOCAL_WORLD_SIZE, MASTER_ADDR and MASTER_PORT set. :func:`join_process_group` joins them (gloo on CPU, NCCL on
CUDA). A global batch of N x ``batch_size`` clips is cut into N equal shares, one per rank; every rank
gathers all ranks' embeddings with :func:`gather_outputs`, so the contrastive loss is the global batch's
loss (its negatives: every clip of the global batch) on every rank. The gather's backward sums the N
ranks' (equal) gradients of each embedding, and DDP averages the parameter gradients over the N ranks: the
gradient of one process on the global batch, as open_clip's ``gather_with_grad``. (A gather without
gradients, even with the local rows put back, would give 1/N of it.)
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor

from ..errors import ParameterError


@dataclass(frozen=True)
class DistEnv:
    """Where this process stands in a data-parallel run (one process: rank 0 of 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1

    @property
    def is_main(self) -> bool:
        """Rank 0 writes the run folder, logs and draws the progress bar."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> DistEnv:
        """The torchrun variables (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE); one process when unset."""
        environ = os.environ if environ is None else environ
        values = {}
        for field, name, default in (
            ("rank", "RANK", 0),
            ("world_size", "WORLD_SIZE", 1),
            ("local_rank", "LOCAL_RANK", 0),
            ("local_world_size", "LOCAL_WORLD_SIZE", 1),
        ):
            raw = environ.get(name, str(default))
            try:
                values[field] = int(raw)
            except ValueError as exc:
                raise ParameterError(
                    f"{name}={raw!r} is not an integer; start the processes with torchrun, "
                    "which sets it, or unset it for one process."
                ) from exc
        env = cls(**values)
        if not 0 <= env.rank < env.world_size or env.local_rank < 0:
            raise ParameterError(
                f"RANK={env.rank}, WORLD_SIZE={env.world_size}, LOCAL_RANK={env.local_rank}: expected "
                "0 <= RANK < WORLD_SIZE and LOCAL_RANK >= 0; start the processes with torchrun."
            )
        return env


def resolve_device(name: str, *, env: DistEnv | None = None) -> torch.device:
    """``"auto"`` picks CUDA when available, else CPU; anything else is passed to torch, and a GPU that is not
    there is refused (ParameterError naming --device). Under torchrun a CUDA device is the process's own GPU,
    ``cuda:LOCAL_RANK``."""
    env = env or DistEnv()
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ParameterError(
            f"--device {name!r} is not a torch device; use 'auto', 'cpu', 'cuda' or 'cuda:N'."
        ) from exc
    if env.enabled and device.type == "cuda":
        if device.index not in (None, env.local_rank):
            raise ParameterError(
                f"device={name!r} under torchrun: each process uses its own GPU, "
                f"cuda:LOCAL_RANK (here cuda:{env.local_rank}); pass --device cuda or auto."
            )
        device = torch.device("cuda", env.local_rank)
    if device.type == "cuda" and (index := device.index or 0) >= torch.cuda.device_count():
        raise ParameterError(
            f"--device {name}: this machine has {torch.cuda.device_count()} usable CUDA GPU(s) (no "
            f"GPU index {index}; or torch is the CPU build); pass --device cpu or auto."
        )
    return device


def threads_per_process(cores: int, *, env: DistEnv) -> int:
    """The host's ``cores`` shared by the processes torchrun started on it (at least one thread each)."""
    return max(1, cores // max(1, env.local_world_size))


def join_process_group(env: DistEnv, *, device: torch.device) -> None:
    """Join the torchrun processes (MASTER_ADDR:MASTER_PORT, or the rendezvous torchrun set up) once per process;
    nothing for one process, or when joined already. The group lives until the process exits: a second group
    on the same port could meet the first one's store before rank 0 has closed it."""
    if not env.enabled or dist.is_initialized():
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(
        backend="nccl" if device.type == "cuda" else "gloo", rank=env.rank, world_size=env.world_size
    )
    atexit.register(_leave_process_group)


def _leave_process_group() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier(env: DistEnv) -> None:
    """Wait for every rank (while rank 0 writes the run folder, the others wait here)."""
    if env.enabled:
        dist.barrier()


def rank_share(indices: np.ndarray, *, env: DistEnv) -> np.ndarray:
    """This rank's share of a global batch: equal shares, so every rank steps with the same shapes and the
    collectives never wait for a rank that has nothing; the last ``len % world_size`` clips sit out."""
    per_rank = len(indices) // env.world_size
    return indices[env.rank * per_rank : (env.rank + 1) * per_rank]


def _gather_values(x: Tensor) -> Tensor:
    """Every rank's ``x`` (same shape on each) joined along dim 0 in rank order."""
    x = x.contiguous()
    out = x.new_empty((dist.get_world_size() * x.shape[0], *x.shape[1:]))
    dist.all_gather_single(out, x)
    return out


class _GatherWithGrad(torch.autograd.Function):
    """All-gather whose backward sums the gathered tensor's gradient over the ranks (an all-reduce) and
    returns this rank's rows: the gradient of the sum of every rank's loss with respect to its own rows."""

    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:
        ctx.rows = x.shape[0]
        return _gather_values(x)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        total = grad.contiguous().clone()
        dist.all_reduce(total)
        first = dist.get_rank() * ctx.rows
        return total[first : first + ctx.rows]


def gather_with_grad(x: Tensor, *, env: DistEnv) -> Tensor:
    """Every rank's ``x`` joined along dim 0 in rank order, differentiable: each rank's rows get the gradient
    that all ranks' losses send them."""
    return _GatherWithGrad.apply(x) if env.enabled else x


def gather_outputs(out: Mapping[str, Tensor], *, env: DistEnv) -> dict[str, Tensor]:
    """The model's outputs of the global batch: every float tensor (fused, beat-head and mismatched
    embeddings, metre logits) gathered with its gradient, the rest (metre targets) as values."""
    if not env.enabled:
        return dict(out)
    return {
        key: gather_with_grad(out[key], env=env) if out[key].is_floating_point() else _gather_values(out[key])
        for key in sorted(out)
    }


def gather_rng_states(env: DistEnv, *, device: torch.device) -> list[dict[str, Tensor]]:
    """Every rank's RNG states (CPU, and its GPU's when on CUDA), in rank order, for ``last/``."""
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    if not env.enabled:
        return [state]
    states: list[dict[str, Tensor]] = [{} for _ in range(env.world_size)]
    dist.all_gather_object(states, state)
    return states
