"""The processes of a `torchrun` job: who this process is, how the processes wait for each other,
and how they share a batch, a loss or a decision.

    torchrun --nproc_per_node=4 train_pretrain.py ...    4 processes, ranks 0..3, one GPU each

Every process runs the same job on its own share of the data; DistributedDataParallel averages
the gradients, so the weights stay identical. Rank 0 alone prepares shared files (the default
data, the tokenizer, the token cache), logs and writes the out dir. A plain `python` run is
rank 0 of a world of 1, and every helper here is then a no-op.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from minilm.common.errors import UserError
from minilm.common.runtime import resolve_device

# How long the other ranks wait while rank 0 prepares the data. NCCL's default of 10 minutes
# (the limit for every collective) is too short for training a tokenizer on a multi-GB corpus and
# tokenizing it; the wait goes through a separate gloo group with this timeout instead, so a
# training step that hangs is still caught after NCCL's 10 minutes. If rank 0 dies, torchrun
# stops the others at once: the long timeout never keeps a failed job alive.
PREPARATION_TIMEOUT = datetime.timedelta(hours=12)


@dataclass
class Distributed:
    """This process's place in a `torchrun` job (rank 0 of 1 when run plainly)."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    cpu_group: object = None  # gloo group with PREPARATION_TIMEOUT: long waits and Python objects

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Only the main process logs, shows progress bars and writes files."""
        return self.rank == 0

    @contextlib.contextmanager
    def main_first(self):
        """Rank 0 runs the block while the others wait; then they run it and find its files made.

            with ddp.main_first():
                tokenizer = train_or_load_tokenizer(...)   # rank 0 trains, the others load
        """
        if not self.is_main:
            self.wait_for_all()
        yield
        if self.is_main:
            self.wait_for_all()

    @contextlib.contextmanager
    def only_main_speaks(self):
        """Inside the block, the other ranks' prints and progress bars go nowhere: work every rank
        repeats (reading and encoding the labeled files) is reported once, by rank 0."""
        if self.is_main:
            yield
            return
        with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            yield

    def wait_for_all(self) -> None:
        """A barrier on the gloo group with the long timeout: for the ranks that wait while rank 0
        does slow work alone (evaluating a big test split, writing files); NCCL's own collectives
        would time out after 10 minutes."""
        if self.enabled:
            dist.barrier(group=self.cpu_group)

    def gather(self, value: object) -> list[object]:
        """Every rank's `value`, in rank order, on every rank (e.g. each rank's RNG state)."""
        if not self.enabled:
            return [value]
        values = [None] * self.world_size
        dist.all_gather_object(values, value, group=self.cpu_group)
        return values

    def main_decides(self, decision: bool) -> bool:
        """Rank 0's decision, on every rank (e.g. stop early: only rank 0 evaluated)."""
        return bool(self.from_main(decision))

    def from_main(self, value: object) -> object:
        """Rank 0's `value` (any picklable object), on every rank; the others' values are ignored."""
        if not self.enabled:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0, group=self.cpu_group)
        return box[0]

    def seed_dropout(self, seed: int) -> None:
        """Call after building the model: each rank then draws its own dropout masks.

        The initial weights came from `seed` on every rank (and DDP copies rank 0's anyway); from
        here on, identical masks on every rank would make N processes see the same noise N times.
        """
        if self.enabled:
            torch.manual_seed(seed + self.rank)

    def check_world_size(self, saved: int) -> None:
        """--resume with another number of processes would change the global batch and the data stream."""
        if saved != self.world_size:
            raise UserError(f"--resume: this run was saved by {saved} process(es) but {self.world_size} are running "
                            f"now; resume with {saved} (torchrun --nproc_per_node={saved}, or python when 1)")

    def close(self) -> None:
        if self.enabled and dist.is_initialized():
            dist.destroy_process_group()


def init_distributed(device_name: str) -> tuple[Distributed, torch.device]:
    """Join the process group torchrun set up (NCCL on GPUs, gloo on CPU); plain runs are world 1."""
    if "RANK" not in os.environ:
        return Distributed(), resolve_device(device_name)
    ctx = Distributed(int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"]), int(os.environ["WORLD_SIZE"]))
    device = resolve_device(device_name)
    if device.type == "cuda":
        if ctx.local_rank >= torch.cuda.device_count():
            raise UserError(f"torchrun started process {ctx.local_rank} on this machine but only "
                            f"{torch.cuda.device_count()} GPU(s) are visible; lower --nproc_per_node")
        device = torch.device("cuda", ctx.local_rank)  # one GPU per process
        torch.cuda.set_device(device)
    # device_id binds this process to its GPU now, instead of NCCL guessing (and warning) later
    dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo",
                            device_id=device if device.type == "cuda" else None)
    ctx.cpu_group = dist.new_group(backend="gloo", timeout=PREPARATION_TIMEOUT)
    return ctx, device


def refuse_torchrun(what: str) -> None:
    """For modes that only make sense once (a range test, predicting): one clear line under torchrun."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise UserError(f"{what} runs in one process: start it with python, not torchrun")


def mean_across_processes(value: torch.Tensor) -> torch.Tensor:
    """The mean of a tensor over all processes (itself outside torchrun), on every process.

    The training loss goes through this before the NaN check and the log: every rank then sees
    the same number, so a NaN on one rank stops all of them at the same step.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return value
    total = value.detach().clone()
    dist.all_reduce(total, op=dist.ReduceOp.SUM)  # gloo has no AVG
    return total / dist.get_world_size()


def split_batch(tensors: tuple[torch.Tensor, ...], ctx: Distributed) -> tuple[tuple[torch.Tensor, ...], float]:
    """This rank's rows of a global batch, and the weight its mean loss gets.

    Rank r takes the r-th of world_size contiguous slices of the B rows. DDP averages gradients
    over ranks, so with n_r rows each rank's mean loss is weighted by n_r · world_size / B:
    (1/W) Σ_r (n_r W / B) · mean_r = (1/B) Σ_rows loss, the one-process gradient of the whole
    batch, even when B does not divide evenly. A rank left with no rows runs one row with weight 0
    (every rank must run the model once per step for DDP's gradient exchange). Exact for a plain
    mean over rows; a loss normalised otherwise (class weights, the LM loss's mean over tokens)
    is combined by row share too, which approximates one process closely but not exactly.
    """
    if not ctx.enabled:
        return tensors, 1.0
    batch = tensors[0].size(0)
    rows = torch.arange(batch).tensor_split(ctx.world_size)[ctx.rank]
    if len(rows) == 0:
        return tuple(t[:1] for t in tensors), 0.0
    return tuple(t[rows] for t in tensors), len(rows) * ctx.world_size / batch
