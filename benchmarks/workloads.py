"""The workloads the benchmarks time: model shapes, random batches, and one training step.

A training step is what a real run repeats: forward, loss, backward, AdamW update, zero grads.
Random token ids cost the same FLOPs as real text, so no data set is needed.

MFU (model FLOPs utilisation) = model FLOPs per second / the machine's measured matmul peak,
with model FLOPs per token from MiniLM.flops_per_token: 6·N_matmul + 12·n_layer·T·C. Work the
model does beyond that formula (softmax, norms, GELU, the optimizer) earns no credit, so MFU
says how much of the step the hardware spends on the matmuls that define the model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from benchmarks.common import peak_memory_mib, reset_peak_memory, rss_mib, sync, time_fn
from minilm import MiniLM, ModelConfig
from minilm.model.config import PRESETS

# The vocabulary each preset is used with (config.py's parameter counts assume these); a
# multiple of 64 keeps the (C, V) output matmul on the BLAS's fast path.
PRESET_VOCAB = {"tiny": 4096, "small": 4096, "medium": 8192, "gpt2-small": 50304}
# Batch sizes a run of each preset would use on the devices it is meant for.
PRESET_BATCH = {"tiny": 16, "small": 12, "medium": 8, "gpt2-small": 8}


def lm_config(shape: dict[str, int], vocab_size: int, attn_impl: str = "fused") -> ModelConfig:
    """A ModelConfig from a preset-style shape dict; dropout 0 as in pretraining, RoPE positions."""
    return ModelConfig(vocab_size=vocab_size, dropout=0.0, pos_encoding="rope", attn_impl=attn_impl,
                       **shape)


def preset_config(preset: str, attn_impl: str = "fused") -> ModelConfig:
    return lm_config(PRESETS[preset], PRESET_VOCAB[preset], attn_impl)


def random_tokens(vocab_size: int, batch: int, seq_len: int, device: torch.device) -> torch.Tensor:
    """(batch, seq_len) int64 ids, seeded so every run sees the same batch."""
    g = torch.Generator().manual_seed(1234)
    return torch.randint(vocab_size, (batch, seq_len), generator=g).to(device)


def make_adamw(model: nn.Module, optimizer: str) -> torch.optim.AdamW:
    """AdamW in one of torch's three implementations (identical maths, different speed):

    for-loop: one small kernel per parameter per operation (torch's default on CPU);
    foreach:  each operation applied to all parameters in one multi-tensor call;
    fused:    the whole update for a parameter in a single pass over its memory.
    """
    flags = {"for-loop": dict(foreach=False), "foreach": dict(foreach=True), "fused": dict(fused=True)}
    return torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.1, **flags[optimizer])


@dataclass
class StepOptions:
    """How the step is run (none of these change the maths beyond rounding)."""

    optimizer: str = "fused"  # "for-loop", "foreach" or "fused": see make_adamw
    compile: bool = False  # torch.compile the model (the optimizer step stays eager)
    autocast: torch.dtype | None = None  # e.g. torch.bfloat16: matmuls in low precision, weights fp32


def make_train_step(model: nn.Module, loss_of: Callable[[nn.Module], torch.Tensor],
                    device: torch.device, options: StepOptions) -> Callable[[], None]:
    """One training step as a no-argument function. loss_of(model) runs the forward, returns the loss."""
    optimizer = make_adamw(model, options.optimizer)
    runner = torch.compile(model) if options.compile else model

    def step() -> None:
        with torch.autocast(device.type, dtype=options.autocast or torch.float32,
                            enabled=options.autocast is not None):
            loss = loss_of(runner)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def lm_loss_of(tokens: torch.Tensor) -> Callable[[nn.Module], torch.Tensor]:
    """Next-token loss on a (B, T + 1) block: inputs are its first T tokens, targets its last T."""
    inputs, targets = tokens[:, :-1], tokens[:, 1:]
    return lambda model: model(inputs, targets=targets)[1]


@dataclass
class Throughput:
    ms_per_step: float
    items_per_s: float  # tokens/s for the LM, examples/s for the classifier
    achieved_flops: float  # model FLOPs per second; MFU = this / the matmul peak
    memory_mib: float


def measure_training(build: Callable[[], tuple[nn.Module, Callable[[nn.Module], torch.Tensor]]],
                     items_per_step: int, flops_per_step: Callable[[nn.Module], float], device: torch.device,
                     options: StepOptions, warmup: int, iters: int) -> Throughput:
    """Build a model, warm up, time `iters` training steps; report the median step.

    build() -> (model, loss_of) is called here so that the memory measurement starts before the
    model exists and counts weights, gradients and AdamW's two moment buffers as well.
    flops_per_step(model) -> the model FLOPs one step is credited with.
    """
    sync(device)
    baseline_rss = rss_mib()
    reset_peak_memory(device)
    model, loss_of = build()
    model.to(device).train()
    step = make_train_step(model, loss_of, device, options)
    timing = time_fn(step, device, warmup, iters)
    memory = peak_memory_mib(device, baseline_rss)
    return Throughput(timing.median * 1e3, items_per_step / timing.median,
                      flops_per_step(model) / timing.median, memory)


def warm_up_process(device: torch.device) -> None:
    """One step of a throwaway model, so that one-time costs (thread pools, BLAS workspaces, lazy
    imports) are not charged to the memory and time of whichever configuration happens to run first."""
    cfg = lm_config(dict(context_length=16, n_layer=1, n_head=2, d_model=32), vocab_size=128)
    measure_lm_training(cfg, 2, 16, device, StepOptions(), warmup=0, iters=1)


def measure_lm_training(cfg: ModelConfig, batch: int, seq_len: int, device: torch.device,
                        options: StepOptions, warmup: int, iters: int) -> Throughput:
    """measure_training for a MiniLM on random tokens, FLOPs from MiniLM.flops_per_token."""
    tokens = random_tokens(cfg.vocab_size, batch, seq_len + 1, device)
    return measure_training(lambda: (MiniLM(cfg), lm_loss_of(tokens)), batch * seq_len,
                            lambda model: model.flops_per_token(seq_len) * batch * seq_len,
                            device, options, warmup, iters)
