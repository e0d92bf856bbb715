"""Data-parallel training across processes and machines with PyTorch's own distributed stack.

Two ways in, one code path:

    mlpace train resnet --nproc-per-node 2            torch's elastic launcher (the engine of
                                                      torchrun) starts 2 local worker processes
    torchrun --nnodes 2 --nproc-per-node 8 --rdzv-endpoint HOST:PORT -m mlpace train resnet

Either way each worker finds RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR / MASTER_PORT in its
environment, and `process_group()` joins the group (gloo on CPU, NCCL on GPU). Without those
variables everything here is a no-op, so a single-process run is untouched.

Hooks a benchmark's workload calls (each is the identity when world_size == 1); a workload
that uses them says so with the class attribute `supports_distributed = True`:

    rank_seed(seed, ctx)          this rank's seed for augmentation (rank 0 keeps the run seed)
    local_batch(global, ctx)      this rank's share of the global batch (must divide evenly)
    shard(n, ctx)                 this rank's contiguous slice of n items (evaluation)
    train_sampler(dataset, ctx)   a DistributedSampler for DataLoader training, or None
    set_epoch(loader, epoch)      reshuffle a DistributedSampler each epoch
    wrap_model(model, ctx)        DistributedDataParallel; unwrap(model) gives the module back
    all_reduce_sum(values, ctx)   element-wise sum of a list of numbers over all ranks
    broadcast / barrier / any_rank   rank 0's object; wait for all; one stop decision for all

Faults: every collective has a timeout (MLPACE_DIST_TIMEOUT seconds, default 300), so when a
rank hangs the others fail after at most that long; when a rank dies its peers see the closed
connection at once. The failure reaches `run_once`, which ends the log with
`run_stop status=aborted`, and is turned into one `error:` line here; the elastic agent stops
the remaining workers, and the exit code is non-zero.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import uuid
from datetime import timedelta
from typing import Any, Callable, Iterator, Sequence

from mlpace.errors import MlpaceError

TIMEOUT_ENV = "MLPACE_DIST_TIMEOUT"
DEFAULT_TIMEOUT_S = 300.0


class RankFailure(MlpaceError):
    """Another rank died, hung past the timeout, or broke the connection."""
    exit_code = 3


# --------------------------------------------------------------------------- where am I
def placement_from_env() -> tuple[int, int, int]:
    """(rank, world_size, local_rank) as torchrun / the elastic launcher set them."""
    def number(name: str, default: int) -> int:
        value = os.environ.get(name, "")
        try:
            return int(value) if value else default
        except ValueError:
            raise MlpaceError(f"environment variable {name}={value!r} is not an integer") from None
    return number("RANK", 0), number("WORLD_SIZE", 1), number("LOCAL_RANK", 0)


def timeout_s() -> float:
    value = os.environ.get(TIMEOUT_ENV, "")
    try:
        seconds = float(value) if value else DEFAULT_TIMEOUT_S
    except ValueError:
        raise MlpaceError(f"{TIMEOUT_ENV}={value!r} is not a number of seconds") from None
    if seconds <= 0:
        raise MlpaceError(f"{TIMEOUT_ENV} must be a positive number of seconds")
    return seconds


def _rendezvous_address() -> str:
    return f"{os.environ.get('MASTER_ADDR', '?')}:{os.environ.get('MASTER_PORT', '?')}"


@contextlib.contextmanager
def process_group(device: str) -> Iterator[dict[str, Any]]:
    """Join the process group the environment describes; yield the RunContext placement fields.

    Yields {"device", "rank", "world_size", "local_rank"}; with a world size of 1 it joins
    nothing. Communication failures inside the block become one clear `RankFailure` line.
    """
    rank, world_size, local_rank = placement_from_env()
    if world_size <= 1:
        yield {"device": device, "rank": 0, "world_size": 1, "local_rank": 0}
        return
    import torch
    import torch.distributed as dist
    if device.startswith("cuda"):
        if local_rank >= torch.cuda.device_count():
            raise MlpaceError(f"local rank {local_rank} needs GPU {local_rank}, but this machine has "
                              f"{torch.cuda.device_count()}: use at most one process per GPU")
        device = f"cuda:{local_rank}"     # one GPU per local rank, as torchrun expects
        torch.cuda.set_device(local_rank)
        backend = "nccl"
    else:
        backend = "gloo"
    limit = timeout_s()
    try:
        dist.init_process_group(backend, rank=rank, world_size=world_size,
                                timeout=timedelta(seconds=limit))
    except (RuntimeError, ValueError, TimeoutError) as err:
        raise _connection_error(err, _rendezvous_address(), limit) from None
    try:
        yield {"device": device, "rank": rank, "world_size": world_size, "local_rank": local_rank}
    except (RuntimeError, TimeoutError) as err:
        if not _is_communication_error(err):
            raise
        raise RankFailure(f"rank {rank}: lost another rank ({_first_line(err)}); "
                          f"the run was aborted (collective timeout {limit:g} s, {TIMEOUT_ENV})") from None
    finally:
        if dist.is_initialized():
            with contextlib.suppress(Exception):
                dist.destroy_process_group()


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    line = text[0] if text else type(err).__name__
    line = re.sub(r"^\[[^\]]*\.(cc|cpp|h):\d+\]\s*", "", line)   # C++ source location
    line = line.split(". ")[0]
    return line if len(line) <= 200 else line[:197] + "..."


def _is_communication_error(err: BaseException) -> bool:
    import torch.distributed as dist
    if isinstance(err, (dist.DistError, TimeoutError)):
        return True
    text = str(err).lower()
    return any(word in text for word in ("gloo", "nccl", "connection", "timed out", "timeout", "peer"))


def _connection_error(err: BaseException, address: str, limit: float) -> MlpaceError:
    """One line for the two set-up failures people meet: a taken port, an absent peer."""
    causes, cause = [], err
    while cause is not None and len(causes) < 5:   # torch wraps the socket error it met
        causes.append(str(cause))
        cause = cause.__cause__ or cause.__context__
    text = " | ".join(causes)
    if "EADDRINUSE" in text or "address already in use" in text.lower():
        return MlpaceError(f"the rendezvous port {address} is already in use: choose a free port "
                           "(--rdzv-endpoint HOST:PORT, or MASTER_PORT under torchrun)")
    if any(w in text.lower() for w in ("timed out", "timeout", "refused", "unreachable", "resolve",
                                       "name or service")):
        return MlpaceError(f"cannot reach the rendezvous at {address} within {limit:g} s: is node 0 "
                           "started, and is the address right and the port open?")
    return MlpaceError(f"cannot join the process group at {address}: {_first_line(err)}")


# --------------------------------------------------------------------------- workload hooks
def check_supported(workload, world_size: int) -> None:
    """Refuse several processes for a workload that has not applied the hooks below: each rank
    would train on all the data with no gradient exchange and log a meaningless result."""
    if world_size > 1 and not getattr(workload, "supports_distributed", False):
        raise MlpaceError(f"{workload.spec.name} does not train on several processes yet "
                          "(its workload does not use mlpace.harness.distributed): run one process")


def rank_seed(seed: int, ctx) -> int:
    """A seed for this rank's own randomness (augmentation); rank 0 keeps the run seed."""
    if ctx.rank == 0:
        return seed
    import numpy as np
    return int(np.random.SeedSequence([seed, ctx.rank]).generate_state(1)[0] % (2**31 - 1))


def local_batch(global_batch: int, ctx) -> int:
    """This rank's share of the global batch (the log's `global_batch_size` stays global)."""
    if global_batch % ctx.world_size:
        raise MlpaceError(f"the global batch size {global_batch} does not divide evenly over "
                          f"{ctx.world_size} processes: choose a multiple of {ctx.world_size}")
    return global_batch // ctx.world_size


def shard(n: int, ctx) -> slice:
    """This rank's contiguous part of n items (parts differ by at most one item)."""
    return slice(n * ctx.rank // ctx.world_size, n * (ctx.rank + 1) // ctx.world_size)


def shard_dataset(dataset, ctx):
    """The rank's part of a map-style data set, for evaluation (every item seen exactly once)."""
    if ctx.world_size == 1:
        return dataset
    import torch
    part = shard(len(dataset), ctx)
    return torch.utils.data.Subset(dataset, range(part.start, part.stop))


def train_sampler(dataset, ctx, seed: int):
    """A DistributedSampler (same shuffle on every rank, a disjoint part each), or None."""
    if ctx.world_size == 1:
        return None
    from torch.utils.data.distributed import DistributedSampler
    return DistributedSampler(dataset, num_replicas=ctx.world_size, rank=ctx.rank,
                              shuffle=True, seed=seed, drop_last=True)


def set_epoch(loader, epoch: int) -> None:
    """Give a DistributedSampler its epoch, so that each epoch is shuffled differently."""
    sampler = getattr(loader, "sampler", None)
    if hasattr(sampler, "set_epoch"):
        sampler.set_epoch(epoch)


def wrap_model(model, ctx):
    """DistributedDataParallel around `model` (already on ctx.device); the model itself if alone."""
    if ctx.world_size == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel
    ids = [ctx.local_rank] if ctx.is_cuda else None
    # DDP broadcasts rank 0's parameters and buffers, so every rank starts from one model.
    return DistributedDataParallel(model, device_ids=ids)


def unwrap(model):
    """The plain module inside a DistributedDataParallel wrapper."""
    return getattr(model, "module", model)


def _joined(ctx) -> bool:
    """True when collectives must run: several ranks, and a process group joined (a context
    that only says rank=1 of 2, as a test of rank-0-only logging does, communicates nothing)."""
    if ctx.world_size == 1:
        return False
    import torch.distributed as dist
    return dist.is_available() and dist.is_initialized()


def all_reduce_sum(values: Sequence[float], ctx) -> list[float]:
    """Element-wise sum of `values` over all ranks (float64), e.g. [correct, total]."""
    if not _joined(ctx):
        return [float(v) for v in values]
    import torch
    import torch.distributed as dist
    device = ctx.device if ctx.is_cuda else "cpu"   # NCCL needs GPU tensors, gloo takes CPU ones
    tensor = torch.tensor([float(v) for v in values], dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.cpu().tolist()


def any_rank(flag: bool, ctx) -> bool:
    """True on every rank when `flag` is true on any rank: one stop decision for all ranks
    (a time budget or Ctrl-C seen by one rank must end the same step on all of them)."""
    if not _joined(ctx):
        return bool(flag)
    return all_reduce_sum([1.0 if flag else 0.0], ctx)[0] > 0


def barrier(ctx) -> None:
    if _joined(ctx):
        import torch.distributed as dist
        dist.barrier()


def broadcast(value: Any, ctx) -> Any:
    """Rank 0's `value` on every rank (e.g. a randomly drawn base seed)."""
    if not _joined(ctx):
        return value
    import torch.distributed as dist
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


# --------------------------------------------------------------------------- launching
def launch(fn: Callable[..., int], args: tuple, nproc_per_node: int, nnodes: int = 1,
           rdzv_endpoint: str | None = None) -> int:
    """Run fn(*args) in `nproc_per_node` local workers through torch's elastic launcher.

    This is what `torchrun --nproc-per-node N` does (LaunchConfig + elastic_launch, c10d
    rendezvous); for several machines every node runs the same command with the same
    `rdzv_endpoint` (HOST:PORT of node 0). Returns rank 0's exit code (or this node's lowest
    rank's); a failed worker makes every other worker stop and gives a non-zero code.
    """
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.elastic.rendezvous.api import RendezvousError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch
    if nproc_per_node < 1 or nnodes < 1:
        raise MlpaceError("--nproc-per-node and --nnodes must be at least 1")
    if nnodes > 1 and not rdzv_endpoint:
        raise MlpaceError("several nodes need --rdzv-endpoint HOST:PORT (node 0's address)")
    endpoint = rdzv_endpoint or "localhost:0"          # port 0: a free port, like --standalone
    limit = timeout_s()
    config = LaunchConfig(
        min_nodes=nnodes, max_nodes=nnodes, nproc_per_node=nproc_per_node,
        run_id=str(uuid.uuid4()) if nnodes == 1 else "mlpace",
        rdzv_backend="c10d", rdzv_endpoint=endpoint,
        # A single node hosts the rendezvous store itself, so a taken port fails at once
        # (left to guess, torch would connect to whatever holds the port and wait).
        rdzv_configs={"join_timeout": int(limit), "read_timeout": int(limit),
                      **({"is_host": True} if nnodes == 1 else {})},
        max_restarts=0,                 # a timed run cannot restart: a failure aborts it
        monitor_interval=0.5, start_method="spawn",
        shutdown_timeout=15)            # SIGTERM, then SIGKILL for a worker that does not stop
    # The agent logs every failure as a traceback; mlpace reports it as one line instead.
    for name in ("torch.distributed.elastic", "torch.multiprocessing"):
        logging.getLogger(name).setLevel(
            logging.DEBUG if os.environ.get("MLPACE_DIST_VERBOSE") else logging.CRITICAL)
    try:
        returns = elastic_launch(config, _worker)(fn, args)
    except ChildFailedError as err:
        rank, failure = err.get_first_failure()
        if failure.exitcode in (2, RankFailure.exit_code, 130):
            return failure.exitcode      # the worker has already printed its one-line error
        how = (f"was killed by {failure.signal_name()}" if failure.exitcode < 0
               else f"exited with code {failure.exitcode}")
        raise RankFailure(f"rank {rank} {how}; the other ranks were stopped and the run is "
                          "aborted") from None
    except RendezvousError as err:
        raise _connection_error(err, endpoint, limit) from None
    except (RuntimeError, ValueError, TimeoutError) as err:
        if not _is_communication_error(err) and "EADDRINUSE" not in str(err):
            raise
        raise _connection_error(err, endpoint, limit) from None
    codes = [code for _, code in sorted(returns.items())]
    return int(codes[0] or 0) if codes else 0


def _worker(fn: Callable[..., int], args: tuple) -> int:
    """One spawned worker: run fn, turning errors for people into a line and an exit code."""
    rank = os.environ.get("RANK", "0")
    try:
        return int(fn(*args) or 0)
    except MlpaceError as err:
        prefix = "" if rank == "0" else f"[rank {rank}] "
        print(f"error: {prefix}{err}", file=sys.stderr, flush=True)
        raise SystemExit(err.exit_code) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None
