"""How a pretraining run is measured and what it tells its user: the fixed validation set and its
loss in bits per byte, the lines the run starts with, and the final report (best validation loss
against the unigram baseline, a few generated samples, report.json).

The loop itself is in minilm/train/pretrain.py.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from minilm.common.files import atomic_write_text, load_torch, save_json
from minilm.common.flags import command_for
from minilm.common.runtime import autocast
from minilm.model.gpt import MiniLM
from minilm.text.lm_data import TokenCache
from minilm.text.tokenizer import Tokenizer
from minilm.tools.metrics import perplexity
from minilm.train.config import PretrainConfig
from minilm.train.resume import RunState
from minilm.train.trainer import Trainer


@dataclass
class ValidationSet:
    """The fixed validation batches and what turns their loss into comparable numbers."""

    batches: list[tuple[torch.Tensor, torch.Tensor]]
    unigram_loss: float  # cross-entropy of a model that ignores context: the bar to beat
    bytes_per_token: float  # nats/token -> bits/byte


@torch.no_grad()
def val_loss(model: MiniLM, batches: list, device: torch.device, dtype: torch.dtype) -> float:
    """Mean next-token loss over fixed validation batches (the same batches every time)."""
    model.eval()
    losses = []
    for x, y in batches:
        with autocast(device, dtype):
            _, loss = model(x.to(device), targets=y.to(device))
        losses.append(loss.item())
    return sum(losses) / len(losses)


def bytes_per_token(cache_meta: dict) -> float:
    """UTF-8 bytes of the val split's text per predicted token: turns nats/token into bits per byte.

    Bytes are those of exactly the documents scored (each + 1 for the newline that ended it),
    counted when the cache was built; a stream of N tokens holds N - 1 predictions. This is the
    ratio `python -m minilm.evaluate` uses on the same text, so the two bits-per-byte figures agree.
    """
    return cache_meta["val_bytes"] / (cache_meta["val_tokens"] - 1)


@dataclass
class PretrainReport:
    """What a run achieved; report.json holds these fields."""

    steps: int
    tokens_seen: int
    train_seconds: float
    wall_seconds: float
    best_val_loss: float
    best_val_ppl: float
    best_val_bpb: float
    unigram_val_loss: float
    unigram_val_ppl: float
    parameters: int


def describe_start(cfg: PretrainConfig, cache: TokenCache, model: MiniLM, val: ValidationSet, trainer: Trainer,
                   tokens_per_step: int) -> None:
    """The run's first lines: the corpus, the model and the bar its loss has to beat."""
    meta, mc = cache.meta, model.cfg
    print(f"corpus: {meta['train_tokens']:,} train tokens, {meta['val_tokens']:,} val tokens "
          f"({meta['train_documents']:,} + {meta['val_documents']:,} documents)"
          + (" [token cache reused]" if cache.reused else ""))
    if cfg.resume:
        print(f"resuming {cfg.out} at step {trainer.step_count}")
    print(f"model: {model.num_parameters():,} parameters ({mc.n_layer} layers x {mc.d_model} wide, "
          f"{mc.n_head} heads, context {mc.context_length}, {mc.pos_encoding} positions) on {trainer.device} "
          f"{trainer.dtype}; {tokens_per_step:,} tokens per step")
    print(f"unigram baseline (no context): val loss {val.unigram_loss:.3f}, "
          f"perplexity {perplexity(val.unigram_loss):,.1f}")


def final_report(cfg: PretrainConfig, out: Path, model: MiniLM, tokenizer: Tokenizer, state: RunState,
                 val: ValidationSet, trainer: Trainer, tokens_per_step: int, wall: float,
                 device: torch.device) -> PretrainReport:
    """Print and save what the run achieved, with generated samples from the best weights."""
    model.load_state_dict(load_torch(out / "model.pt"))
    best_row = min(state.rows, key=lambda r: r["val_loss"])
    samples = generate_samples(model, tokenizer, cfg.num_samples, device, cfg.seed) if cfg.num_samples else []
    atomic_write_text(out / "samples.txt", "\n\n".join(samples) + "\n")
    report = PretrainReport(
        steps=trainer.step_count, tokens_seen=trainer.step_count * tokens_per_step, train_seconds=trainer.elapsed,
        wall_seconds=wall, best_val_loss=state.best_val, best_val_ppl=perplexity(state.best_val),
        best_val_bpb=best_row["val_bpb"], unigram_val_loss=val.unigram_loss,
        unigram_val_ppl=perplexity(val.unigram_loss), parameters=model.num_parameters())
    save_json(asdict(report), out / "report.json")
    print(f"\ndone: {report.steps} steps, {report.tokens_seen:,} tokens in {trainer.elapsed / 60:.1f} min "
          f"of training ({wall / 60:.1f} min wall)")
    print(f"best val loss {report.best_val_loss:.3f} (perplexity {report.best_val_ppl:.1f}, "
          f"{report.best_val_bpb:.3f} bits/byte) vs unigram baseline {report.unigram_val_loss:.3f} "
          f"(perplexity {report.unigram_val_ppl:.1f})")
    print("samples (temperature 0.8, top-k 40):")
    for text in samples:
        print(f"  > {text}")
    print(f"saved to {out}/: model.pt (best), trainer_state.pt, config.json, tokenizer.model, metrics.csv, "
          f"samples.txt, report.json" + (", loss.png" if (out / "loss.png").exists() else ""))
    print(f"next: fine-tune it as a classifier: {command_for('finetune')} --ckpt {out}   "
          f"(or sample from it: {command_for('generate')} --ckpt {out})")
    return report


def generate_samples(model: MiniLM, tokenizer: Tokenizer, n: int, device: torch.device, seed: int) -> list[str]:
    """n texts from the beginning-of-text token, with their own generator (the run's RNG is untouched)."""
    generator = torch.Generator(device=device).manual_seed(seed)
    start = torch.full((n, 1), tokenizer.bos_id, dtype=torch.long, device=device)
    length = min(model.cfg.context_length, 80)
    ids = model.generate(start, length, temperature=0.8, top_k=40, generator=generator)
    texts = []
    for row in ids.tolist():
        row = row[1:]
        row = row[: row.index(tokenizer.eos_id)] if tokenizer.eos_id in row else row
        texts.append(tokenizer.decode(row))
    return texts
