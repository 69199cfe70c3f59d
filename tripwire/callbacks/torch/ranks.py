"""`Ranks`: the processes of a data-parallel run, as a torch adapter's decisions see them.

Every rank evaluates its own sample; before acting, the ranks agree on each decision with one
boolean collective (any rank says yes: every rank does it), so they stop, save and raise at the
same step. Lightning agrees through ``trainer.strategy.reduce_boolean_decision``; a plain loop
through :func:`torch_distributed_ranks`. A single process agrees with itself, with no collective.

Example:
    >>> alone = Ranks()
    >>> alone.any(True), alone.all(False), alone.is_main
    (True, False, True)
    >>> votes = Ranks(world_size=2, is_main=False, agree=lambda flag, every: flag and not every)
    >>> votes.any(True), votes.all(True)
    (True, False)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Ranks:
    """How the ranks agree.

    Args:
        world_size: number of processes (1: no collectives).
        is_main: whether this process alerts and writes the run record (rank 0).
        agree: ``(flag, every) -> bool``, the flag reduced over the ranks: true when it is true
            on any rank (``every=False``) or on every rank (``every=True``); one collective, called
            on every rank at the same point.
    """

    world_size: int = 1
    is_main: bool = True
    agree: Callable[[bool, bool], bool] | None = None

    @property
    def distributed(self) -> bool:
        """Whether there are other ranks to agree with."""
        return self.world_size > 1 and self.agree is not None

    def any(self, flag: bool) -> bool:
        """True on every rank when ``flag`` is true on some rank."""
        return bool(self.agree(bool(flag), False)) if self.distributed else bool(flag)  # type: ignore[misc]

    def all(self, flag: bool) -> bool:
        """True on every rank when ``flag`` is true on every rank."""
        return bool(self.agree(bool(flag), True)) if self.distributed else bool(flag)  # type: ignore[misc]


def torch_distributed_ranks(device: Any = "cpu") -> Ranks:
    """The ranks of the default ``torch.distributed`` process group (one process when there is
    none), agreeing with an ``all_reduce`` of one integer on ``device`` (the model's: NCCL
    reduces CUDA tensors only)."""
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        return Ranks()
    device = torch.device(device)

    def agree(flag: bool, every: bool) -> bool:
        vote = torch.tensor([int(flag)], dtype=torch.int32, device=device)
        dist.all_reduce(vote, op=dist.ReduceOp.MIN if every else dist.ReduceOp.MAX)
        return bool(vote.item())

    return Ranks(world_size=dist.get_world_size(), is_main=dist.get_rank() == 0, agree=agree)
