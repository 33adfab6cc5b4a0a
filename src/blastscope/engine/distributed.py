"""Data-parallel training across processes: torch DistributedDataParallel, gloo on CPU, NCCL on GPUs.

One training run, ``N`` processes, each holding a full model copy. Every global batch of the
deterministic epoch order (:func:`blastscope.engine.sampling.epoch_order`) is split across the
ranks like ``torch.utils.data.DistributedSampler`` does (rank ``r`` takes positions ``r, r + N,
...``), each sample keeps its augmentation seed ``(seed, epoch, position)``, the loss is scaled so
that DDP's gradient average equals the gradient of the global-batch mean, and BatchNorm statistics
are reduced over the global batch (:class:`DistributedBatchNorm2d`; torch's ``SyncBatchNorm``
refuses CPU tensors). Hence ``N`` processes give the single-process result with the same global
batch, up to float rounding (tested with 2 gloo processes; the same test runs for 2 GPUs where
two exist). On CUDA (``train.device`` cuda or auto with a GPU) each process drives one GPU,
``cuda:<local rank>``, and the group's backend is NCCL (:func:`backend_for`); BatchNorm's
reductions then run on the GPUs over NCCL too, the same maths as on the CPU.

Launch either way:

* ``torchrun --nproc-per-node N [--nnodes M ...] $(which blastscope) cv RECIPE ...``: the
  launcher's environment (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``) is used;
* ``blastscope cv RECIPE --devices N``: :func:`run_data_parallel` spawns ``N`` local processes.

Only rank 0 writes files; the others read the same (shared) run folder. A step that only rank 0
should do (evaluation, writing predictions) runs through :func:`run_on_main`: the other ranks wait
for its result and see its failure as :class:`MainProcessError` instead of waiting forever.
"""
from __future__ import annotations

import logging
import os
import pickle
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn

__all__ = [
    "DistributedBatchNorm2d",
    "MainProcessError",
    "all_reduce_sum",
    "backend_for",
    "barrier",
    "broadcast_object",
    "gather_strided",
    "init_from_env",
    "is_distributed",
    "is_main_process",
    "launch",
    "launched_by_torchrun",
    "local_rank",
    "rank",
    "rank_device",
    "run_data_parallel",
    "run_on_main",
    "shard_positions",
    "sync_batchnorm",
    "world_size",
    "wrap_model",
]

logger = logging.getLogger(__name__)

_BN_GROUP: Any = None
# How long a rank waits in a collective: the others wait for rank 0 while it alone decodes the
# images and evaluates, which on a large data set on CPU can exceed torch's default of 30 minutes.
WAIT_TIMEOUT = timedelta(hours=6)


def is_distributed() -> bool:
    """True inside an initialised process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    """Rank 0 (or the only process): the one that writes files and draws progress bars."""
    return rank() == 0


def backend_for(device: torch.device | str) -> str:
    """The process-group backend for training on ``device``: NCCL for CUDA devices, gloo otherwise.

    Raises:
        ValueError: CUDA without NCCL in this PyTorch build.
    """
    device = torch.device(device)
    if device.type != "cuda":
        return "gloo"
    if not (dist.is_available() and dist.is_nccl_available()):
        raise ValueError("data-parallel training on GPUs needs NCCL, which this PyTorch build lacks; "
                         "train on one GPU (--devices 1) or install a CUDA build of torch with NCCL")
    return "nccl"


def local_rank() -> int:
    """This process's index on its machine (torchrun's ``LOCAL_RANK``; else the global rank)."""
    value = os.environ.get("LOCAL_RANK")
    return int(value) if value is not None else rank()


def rank_device(device: torch.device) -> torch.device:
    """The device this rank trains on: its own GPU, ``cuda:<local rank>``, when ``device`` is CUDA and
    the run is data-parallel; ``device`` otherwise."""
    if device.type == "cuda" and is_distributed():
        return torch.device("cuda", local_rank())
    return device


def _collective_device() -> torch.device:
    # NCCL reduces tensors that live on this rank's GPU; gloo reduces CPU tensors
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def barrier() -> None:
    if is_distributed():
        dist.barrier()


class MainProcessError(RuntimeError):
    """Raised on ranks other than 0 when a step that rank 0 ran for everyone failed there.

    ``value_error``: whether rank 0's exception was a ``ValueError`` (bad input rather than a bug).
    """

    def __init__(self, message: str, value_error: bool = False):
        super().__init__(message)
        self.value_error = value_error


def broadcast_object(value: Any) -> Any:
    """Rank 0's ``value`` (any small picklable object) on every rank; ``value`` itself when not distributed."""
    if not is_distributed():
        return value
    box = [value if is_main_process() else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def run_on_main(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run ``fn(*args, **kwargs)`` on rank 0 only; every rank returns its (small, picklable) result.

    The other ranks wait for rank 0 (this is a barrier). When ``fn`` raises, rank 0 re-raises the
    exception and the other ranks raise :class:`MainProcessError` naming it, so no rank waits for a
    step that will never come. Not distributed: simply ``fn(*args, **kwargs)``.
    """
    if not is_distributed():
        return fn(*args, **kwargs)
    outcome: tuple[str, Any, bool] = ("ok", None, False)
    error: BaseException | None = None
    if is_main_process():
        try:
            outcome = ("ok", fn(*args, **kwargs), False)
        except Exception as e:  # noqa: BLE001 - reported to every rank, then re-raised unchanged
            error, outcome = e, ("error", f"{type(e).__name__}: {e}", isinstance(e, ValueError))
    status, value, value_error = broadcast_object(outcome)
    if error is not None:
        raise error
    if status == "error":
        raise MainProcessError(f"rank 0 failed: {value}", value_error)
    return value


def all_reduce_sum(values: list[float]) -> list[float]:
    """Element-wise sum over ranks (float64); the values themselves when not distributed."""
    if not is_distributed():
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=_collective_device())
    dist.all_reduce(t)
    return t.cpu().tolist()


def gather_strided(part: np.ndarray, n_total: int) -> np.ndarray:
    """Reassemble rows ``r, r + N, ...`` held by each rank ``r`` into the full ``n_total``-row array."""
    if not is_distributed():
        return part
    parts: list[np.ndarray | None] = [None] * world_size()
    dist.all_gather_object(parts, part)
    out = np.empty((n_total,) + part.shape[1:], dtype=part.dtype)
    for r, p in enumerate(parts):
        out[r::len(parts)] = p
    return out


def shard_positions(n_items: int, batch_size: int, rank_: int, world: int) -> tuple[np.ndarray, list[int]]:
    """This rank's epoch positions and the size of every global batch.

    The single-process loader takes ``n_items // batch_size`` full batches when
    ``n_items > batch_size`` (``drop_last``) and else one batch of all items. Global batch ``b``
    covers positions ``[b * batch_size, (b + 1) * batch_size)``; rank ``r`` takes those ``p`` with
    ``p % world == r``, so consecutive ``batch_size // world`` of its positions make its share of
    one global batch.

    Returns:
        (int64 positions in epoch order for ``rank_``, list of global batch sizes).
    """
    if world < 1 or not 0 <= rank_ < world:
        raise ValueError(f"need 0 <= rank < world, got rank={rank_} world={world}")
    if batch_size % world:
        raise ValueError(f"batch_size={batch_size} must be divisible by the number of processes ({world})")
    if n_items < world:
        raise ValueError(f"{n_items} training items cannot be shared by {world} processes")
    used = (n_items // batch_size) * batch_size if n_items > batch_size else n_items
    sizes = [batch_size] * (used // batch_size) if n_items > batch_size else [n_items]
    return np.arange(rank_, used, world, dtype=np.int64), sizes


class _AllReduceSum(torch.autograd.Function):
    """Sum over ranks; the gradient of every input is the sum of the output gradients."""

    @staticmethod
    def forward(ctx, tensor: Tensor, group: Any) -> Tensor:
        ctx.group = group
        out = tensor.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(out, group=group)
        return out

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        return _AllReduceSum.apply(grad, ctx.group), None


def _bn_group() -> Any:
    # BatchNorm's collectives run on their own group (the run's backend: gloo, or NCCL on GPUs) so they
    # never interleave with DDP's buckets.
    global _BN_GROUP
    if _BN_GROUP is None:
        _BN_GROUP = dist.new_group(backend=dist.get_backend())
    return _BN_GROUP


class DistributedBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics cover the global batch of all ranks.

    Same parameters, buffers and eval behaviour as ``nn.BatchNorm2d``; in training under an
    initialised process group the mean and biased variance (two-pass, for precision) are summed
    over ranks with a differentiable all-reduce, and the running statistics are updated with the
    unbiased global variance exactly as ``F.batch_norm`` does. Shape: B x C x H x W -> same.
    """

    def forward(self, x: Tensor) -> Tensor:
        if not (self.training and is_distributed()):
            return super().forward(x)
        c = x.shape[1]
        shape = (1, c, 1, 1)
        dims = (0, 2, 3)
        dtype = x.dtype
        x = x.float()  # under mixed precision too: a count of 30,000+ values per channel overflows fp16
        local = torch.cat([x.sum(dims), x.new_tensor([x.numel() / c])])
        total = _AllReduceSum.apply(local, _bn_group())
        n = total[-1]
        mean = total[:c] / n
        centred = x - mean.view(shape)
        var = _AllReduceSum.apply(centred.square().sum(dims), _bn_group()) / n
        y = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                count = float(n)
                self.running_mean.mul_(1 - factor).add_(mean.detach(), alpha=factor)
                unbiased = var.detach() * (count / max(count - 1.0, 1.0))
                self.running_var.mul_(1 - factor).add_(unbiased, alpha=factor)
        return y.to(dtype)


@contextmanager
def sync_batchnorm(model: nn.Module) -> Iterator[nn.Module]:
    """Within the block every ``nn.BatchNorm2d`` of ``model`` is a :class:`DistributedBatchNorm2d`.

    The modules keep their identity, parameters and buffers (the class is swapped and restored),
    so optimisers and checkpoints are unaffected.
    """
    swapped = [m for m in model.modules() if type(m) is nn.BatchNorm2d]
    for m in swapped:
        m.__class__ = DistributedBatchNorm2d
    try:
        yield model
    finally:
        for m in swapped:
            m.__class__ = nn.BatchNorm2d


def wrap_model(model: nn.Module) -> nn.Module:
    """``DistributedDataParallel(model)``, on the model's GPU when it has one (buffers are already
    identical on every rank)."""
    from torch.nn.parallel import DistributedDataParallel

    device = next(model.parameters()).device
    if device.type == "cuda":
        return DistributedDataParallel(model, device_ids=[device.index], output_device=device.index,
                                       forward_sync_buffers=False)
    return DistributedDataParallel(model, forward_sync_buffers=False)


def launched_by_torchrun() -> bool:
    """True when the process was started by torchrun (or another launcher setting ``WORLD_SIZE``)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ


def init_from_env(backend: str = "gloo") -> None:
    """Join the process group described by the launcher's environment variables (with NCCL, this
    process first takes GPU ``LOCAL_RANK``)."""
    if backend == "nccl":
        if "LOCAL_RANK" not in os.environ:
            raise ValueError("data-parallel training on GPUs needs LOCAL_RANK (each process's GPU on its machine), "
                             "which torchrun sets; this launcher did not")
        torch.cuda.set_device(local_rank())
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, timeout=WAIT_TIMEOUT)
    logger.info("process %d of %d joined (%s)", dist.get_rank(), dist.get_world_size(), backend)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(local_rank: int, payload: bytes, nprocs: int, init_method: str, threads: int | None,
            failures: Any = None, backend: str = "gloo") -> None:
    global _BN_GROUP
    fn, args, kwargs = pickle.loads(payload)
    os.environ["LOCAL_RANK"] = str(local_rank)
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
    if threads is not None:
        torch.set_num_threads(threads)
    from blastscope.engine.allocator import keep_freed_memory

    keep_freed_memory()  # a spawned process starts with glibc's defaults; the command line sets this
    dist.init_process_group(backend, init_method=init_method, rank=local_rank, world_size=nprocs, timeout=WAIT_TIMEOUT)
    try:
        if local_rank != 0 and "progress" in kwargs:
            from blastscope.engine.progress import no_progress

            kwargs = {**kwargs, "progress": no_progress}
        fn(*args, **kwargs)
    except Exception as e:
        if failures is not None:  # the parent re-raises the original error, not a traceback dump
            secondary = isinstance(e, MainProcessError)
            failures.put((local_rank, secondary, e.value_error if secondary else isinstance(e, ValueError), f"{e}"))
        raise
    finally:
        _BN_GROUP = None
        dist.destroy_process_group()


def _root_cause(failures: Any) -> Exception | None:
    """The error the workers reported first in cause order: an original error (lowest rank) before a MainProcessError."""
    reports = []
    while not failures.empty():
        reports.append(failures.get())
    if not reports:
        return None
    rank_, _, value_error, message = min(reports, key=lambda r: (r[1], r[0]))
    where = f" (in process {rank_} of the data-parallel run)" if rank_ else ""
    return (ValueError if value_error else RuntimeError)(f"{message}{where}")


def launch(fn: Callable[..., Any], nprocs: int, args: tuple = (), kwargs: dict[str, Any] | None = None,
           threads: int | None = None, backend: str = "gloo") -> None:
    """Run ``fn(*args, **kwargs)`` in ``nprocs`` new local processes joined in a ``backend`` group
    (gloo; or NCCL, one GPU per process, ``cuda:0`` ... ``cuda:<nprocs - 1>``).

    ``fn`` and its arguments must be picklable (a module-level function); each process gets its
    own copy of them (arrays and weights are copied, not shared). ``threads``: torch
    threads per process (default: this machine's cores divided by ``nprocs``, at least 1). Ranks
    other than 0 get ``progress=no_progress`` when ``progress`` is passed. Returns when all are
    done. An exception in any process is raised here with its message: a ``ValueError`` when the
    original was one (e.g. unreadable images), else a ``RuntimeError``; rank 0's own error wins
    over the :class:`MainProcessError` it causes elsewhere.
    """
    if nprocs < 1:
        raise ValueError(f"nprocs must be >= 1, got nprocs={nprocs}")
    if backend not in ("gloo", "nccl"):
        raise ValueError(f"backend must be gloo or nccl, got backend={backend!r}")
    if backend == "nccl" and nprocs > torch.cuda.device_count():
        raise ValueError(f"--devices {nprocs} on GPUs needs {nprocs} GPUs (one per process); this machine has "
                         f"{torch.cuda.device_count()}")
    import torch.multiprocessing as mp

    threads = threads or max(1, (os.cpu_count() or 1) // nprocs)
    init_method = f"tcp://127.0.0.1:{_free_port()}"
    # Plain pickle gives every process its own copy: torch.multiprocessing would move tensors
    # (model weights) into shared memory, and all ranks would then update the same weights.
    payload = pickle.dumps((fn, tuple(args), dict(kwargs or {})))
    failures = mp.get_context("spawn").SimpleQueue()
    try:
        mp.start_processes(_worker, args=(payload, nprocs, init_method, threads, failures, backend), nprocs=nprocs, join=True,
                           start_method="spawn")
    except mp.ProcessRaisedException:
        cause = _root_cause(failures)
        if cause is None:
            raise
        raise cause from None


def run_data_parallel(fn: Callable[..., Any], devices: int, args: tuple = (),
                      kwargs: dict[str, Any] | None = None, threads: int | None = None, backend: str = "gloo") -> bool:
    """Run ``fn`` data-parallel in a ``backend`` group (:func:`backend_for` the training device);
    returns True in the process that should report results.

    Under torchrun this process joins the launcher's group and runs ``fn`` as its rank (True on
    rank 0 only). Otherwise ``devices > 1`` spawns that many local processes and waits (True);
    ``devices == 1`` simply calls ``fn`` (True).
    """
    if devices < 1:
        raise ValueError(f"devices must be >= 1, got devices={devices}")
    kwargs = dict(kwargs or {})
    if launched_by_torchrun():
        init_from_env(backend)
        if not is_main_process() and "progress" in kwargs:
            from blastscope.engine.progress import no_progress

            kwargs["progress"] = no_progress
        try:
            fn(*args, **kwargs)
            barrier()
            return is_main_process()
        finally:
            global _BN_GROUP
            _BN_GROUP = None
            dist.destroy_process_group()
    if devices == 1:
        fn(*args, **kwargs)
        return True
    launch(fn, devices, args, kwargs, threads=threads, backend=backend)
    return True
