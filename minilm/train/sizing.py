"""A model sized for the time budget: `train_pretrain.py --max-time N` with no size flag.

For a fixed amount of compute C ≈ 6·N·D (N parameters, D training tokens), a bigger model
learns more per token but sees fewer of them. Hoffmann et al. (2022, "Chinchilla") found the
loss lowest when the two grow together, at D ≈ 20·N. Here the compute is minutes on this
machine, so the rule becomes: measure how many tokens per second each candidate trains at,
multiply by the budget, and take the largest candidate that still gets TOKENS_PER_PARAM
tokens per parameter.

N counts the parameters inside the blocks (Kaplan et al., 2020, "non-embedding" parameters):
an embedding row is looked up, not multiplied, and in models this small the embedding table
is a large share of all parameters while costing little of the compute. The constant is
measured, not Chinchilla's 20: in the 5-minute sweep on IMDB (benchmarks/RESULTS.md,
"Pretraining recipe"), sizes the rule credits with 47, 17, 7 and 2 tokens per block parameter
scored 1.763, 1.758, 1.747 and 1.770 bits/byte: the best got ~5-7. Models this small are far
from Chinchilla's regime (their embeddings and head cost as much as their blocks), and the
probe's tokens/s (no evaluations) runs ~20% above what a run realises.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import torch

from minilm.common.distributed import Distributed
from minilm.model.config import ModelConfig
from minilm.model.gpt import MiniLM
from minilm.train.trainer import OptimSettings, Trainer

TOKENS_PER_PARAM = 5.0

# (n_layer, d_model, context_length), smallest first; heads of 32 up to d_model 128, of 64 above.
CANDIDATES = [(2, 96, 128), (4, 96, 128), (4, 128, 128), (4, 192, 128), (6, 192, 256), (6, 256, 256),
              (6, 384, 256), (8, 512, 256), (12, 768, 512)]
TIMED_STEPS = 3  # after one untimed step (allocations, kernel choices): the median of these


@dataclass
class SizeChoice:
    """The chosen shape and why: what the job prints and saves."""

    shape: dict  # ModelConfig fields: n_layer, n_head, d_model, context_length
    block_params: int  # N of the rule
    tokens_per_s: float
    budget_tokens: float  # tokens_per_s × the budget's seconds

    @property
    def name(self) -> str:
        return f"{self.shape['n_layer']}x{self.shape['d_model']}"

    @property
    def tokens_per_param(self) -> float:
        return self.budget_tokens / self.block_params


def explain_size(chosen: SizeChoice, measured: list[SizeChoice], minutes: float) -> str:
    """What --auto-size prints: each candidate's speed and tokens per parameter, and the pick."""
    seen = ", ".join(f"{c.name} {c.tokens_per_s:,.0f} tok/s -> {c.tokens_per_param:.0f}" for c in measured)
    s = chosen.shape
    return (f"auto size for --max-time {minutes:g} (tokens per block parameter in the budget: {seen}): "
            f"{s['n_layer']} layers x {s['d_model']} wide, {s['n_head']} heads, context {s['context_length']}, "
            f"the largest with >= {TOKENS_PER_PARAM:g} (pass --preset or --n-layer/--d-model to choose yourself)")


def shape_of(n_layer: int, d_model: int, context_length: int) -> dict:
    return dict(n_layer=n_layer, n_head=d_model // (32 if d_model <= 128 else 64), d_model=d_model,
                context_length=context_length)


def block_parameters(model: MiniLM) -> int:
    return sum(p.numel() for p in model.body.blocks.parameters())


def measure_tokens_per_s(model_cfg: ModelConfig, settings: OptimSettings, batch_size: int, device: torch.device,
                         dtype: torch.dtype) -> tuple[float, int]:
    """Train steps of a fresh model on random tokens: (tokens/s, block parameters). Leaves the
    global random state as it found it, so the real run starts from the same seed either way."""
    rng = torch.random.get_rng_state()
    model = MiniLM(model_cfg).to(device)
    trainer = Trainer(model, settings, device, dtype)
    T = model_cfg.context_length
    tokens = torch.randint(0, model_cfg.vocab_size, (batch_size, T + 1), device=device)
    batch = (tokens[:, :-1], tokens[:, 1:])
    times = []
    for i in range(1 + TIMED_STEPS):
        started = time.perf_counter()
        trainer.step([batch], lambda m, b: m(*b)[1])
        if i:
            times.append(time.perf_counter() - started)
    torch.random.set_rng_state(rng)
    return batch_size * T / statistics.median(times), block_parameters(model)


def choose_size(base: ModelConfig, settings: OptimSettings, batch_size: int, minutes: float,
                device: torch.device, dtype: torch.dtype, processes: int = 1) -> tuple[SizeChoice, list[SizeChoice]]:
    """The largest candidate that gets >= TOKENS_PER_PARAM tokens per block parameter in `minutes`
    (the smallest candidate when none does), and every candidate measured. Candidates are measured
    smallest first and the search stops at the first one that falls short: a few seconds in all.
    Under torchrun, `processes` copies train side by side: the budget holds that many times the tokens."""
    budget_s = 60.0 * minutes
    measured: list[SizeChoice] = []
    for n_layer, d_model, context in CANDIDATES:
        shape = shape_of(n_layer, d_model, context)
        cfg = ModelConfig(**{**base.to_dict(), **shape, "d_ff": 0})
        tok_s, params = measure_tokens_per_s(cfg, settings, batch_size, device, dtype)
        measured.append(SizeChoice(shape, params, tok_s * processes, tok_s * processes * budget_s))
        if measured[-1].budget_tokens < TOKENS_PER_PARAM * params:
            break
    fits = [c for c in measured if c.budget_tokens >= TOKENS_PER_PARAM * c.block_params]
    return (fits[-1] if fits else measured[0]), measured


def size_for_budget(base: ModelConfig, settings: OptimSettings, batch_size: int, minutes: float,
                    device: torch.device, dtype: torch.dtype, ddp: Distributed) -> dict:
    """--auto-size in a job: rank 0 measures the candidates alone and prints its choice, every rank
    gets the shape. The job puts it into its model settings, so config.json records it and
    --resume reuses it."""
    shape = None
    with ddp.main_first():
        if ddp.is_main:
            chosen, measured = choose_size(base, settings, batch_size, minutes, device, dtype,
                                           processes=ddp.world_size)
            print(explain_size(chosen, measured, minutes))
            shape = chosen.shape
    return ddp.from_main(shape)
