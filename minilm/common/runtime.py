"""Where and how a job runs: device, precision, random seeds (the processes of a torchrun job
are in distributed.py).

Nothing in minilm hard-codes a device: jobs ask `resolve_device("auto")`, which picks CUDA,
then Apple's MPS, then the CPU.
"""

from __future__ import annotations

import contextlib
import ctypes
import random
import re

import numpy as np
import torch

from minilm.common.errors import UserError

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
DEVICE_HELP = "auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps"  # every command's --device


def resolve_device(name: str) -> torch.device:
    """"auto" | "cpu" | "cuda" | "cuda:N" | "mps" -> a torch.device that exists on this machine."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {name} was asked for but this machine has no CUDA GPU "
                        "(or torch was built without CUDA); use --device cpu or auto")
    if name == "mps" and not torch.backends.mps.is_available():
        raise UserError("--device mps was asked for but MPS is not available here; use --device cpu or auto")
    if name not in ("cpu", "cuda", "mps") and not re.fullmatch(r"cuda:\d+", name):
        raise UserError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps")
    if name.startswith("cuda:") and int(name[5:]) >= torch.cuda.device_count():
        raise UserError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA GPU(s), "
                        f"numbered from 0")
    return torch.device(name)


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """Training precision. "auto": bf16 on GPUs with native bf16 (Ampere and newer), fp16 with a
    GradScaler on older GPUs (T4, V100, RTX 20xx), fp32 elsewhere.

    bf16 has fp32's exponent range, so it needs no loss scaling; fp16 does (a GradScaler);
    on a CPU, fp32 is usually the fastest as well as the simplest.
    """
    if name == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if has_native_bf16(device) else torch.float16
        return torch.float32
    if name not in DTYPES:
        raise UserError(f"unknown dtype {name!r}; use auto, fp32, bf16 or fp16")
    if name == "fp16" and device.type != "cuda":
        raise UserError(f"--dtype fp16 needs a CUDA GPU (device here: {device.type}); use fp32 or bf16")
    return DTYPES[name]


def has_native_bf16(device: torch.device) -> bool:
    """bf16 tensor cores arrived with compute capability 8.0 (Ampere).

    Not torch.cuda.is_bf16_supported(): since torch 2.4 it also answers yes on older GPUs, where
    bf16 is emulated (slow) and SDPA's flash and memory-efficient kernels fall back to the full
    T×T attention matrix.
    """
    return torch.cuda.get_device_capability(device) >= (8, 0)


def autocast(device: torch.device, dtype: torch.dtype):
    """Mixed precision: matmuls in dtype, reductions (softmax, losses) kept in fp32 by torch."""
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def enable_tf32() -> None:
    """On Ampere+ GPUs, let fp32 matmuls use TF32 tensor cores (10-bit mantissa, ~8x faster)."""
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


def rng_state(device: torch.device) -> dict:
    """Every random number generator's state, for an exact resume.

    Only tensors and plain Python values, so the file loads with torch.load(weights_only=True):
    numpy's key array travels as a tensor. On a GPU, only the training device's generator: a run
    saved on an 8-GPU box must resume where fewer GPUs are visible.
    """
    name, keys, pos, has_gauss, cached = np.random.get_state()
    numpy_state = (name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached)
    state = {"python": random.getstate(), "numpy": numpy_state, "torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict, device: torch.device) -> None:
    """Restore rng_state's generators; the CUDA one onto the device this process trains on."""
    random.setstate(state["python"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)


def keep_freed_memory() -> bool:
    """Ask glibc malloc to keep freed blocks for reuse instead of returning them to the OS.

    By default a block above M_MMAP_THRESHOLD (128 KiB, adapting up to 32 MiB) is its own mmap,
    unmapped on free, so the next step's tensor of the same size comes back as fresh pages and
    each 4 KiB page costs a fault (the kernel zeroes it). The small preset's logits at batch 32
    are (4096, 4096) fp32 = 64 MiB, and so are their gradient and the loss's buffers: every step
    paid ~65k page faults for them. Keeping freed memory made a pretraining step of the small
    preset ~1.3x faster on a 2-core CPU (benchmarks/RESULTS.md); the process keeps its peak
    memory instead of giving it back between steps. CUDA has its own caching allocator, so this
    only matters on a CPU. Process-wide; the training jobs call it (via the Trainer), importing
    minilm does not. Returns False where there is no glibc (macOS, Windows).
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # constants from <malloc.h>
    one_gib = 1 << 30
    return bool(libc.mallopt(m_mmap_threshold, one_gib)) and bool(libc.mallopt(m_trim_threshold, one_gib))
