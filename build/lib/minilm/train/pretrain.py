"""The pretraining job: text -> tokenizer -> token cache -> MiniLM trained on next-token prediction.

`run(cfg)` reads top to bottom: out dir -> data -> model -> trainer -> loop -> report. The loop's
mutable state (step count aside, which the Trainer keeps) is one small dataclass, `RunState`;
evaluating and saving is one named function, `evaluate_and_save`. `find_lr(cfg)` is the
learning-rate range test; `cli()` parses the flags and picks one of the two.
"""

from __future__ import annotations

import argparse
import itertools
import math
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from minilm.checkpoint import read_config
from minilm.common.errors import UserError, exit_on_user_error
from minilm.common.files import atomic_write, load_torch, save_csv, save_json, save_torch
from minilm.common.flags import add_flags, command_line, values_for
from minilm.common.plots import plot_curves
from minilm.common.run_dir import claim_out_dir
from minilm.common.runtime import (
    Distributed,
    autocast,
    enable_tf32,
    init_distributed,
    resolve_dtype,
    rng_state,
    seed_everything,
    set_rng_state,
)
from minilm.model.config import ModelConfig
from minilm.model.gpt import MiniLM
from minilm.reviews.world import ensure_default_data
from minilm.text.lm_data import LMBatcher, TokenCache, build_token_cache, fixed_batches, unigram_cross_entropy
from minilm.text.tokenizer import Tokenizer
from minilm.tools.metrics import perplexity
from minilm.train import lr_finder
from minilm.train.config import PretrainConfig
from minilm.train.trainer import OptimSettings, Trainer, check_settings

METRIC_COLUMNS = ["step", "tokens", "lr", "train_loss", "val_loss", "val_ppl", "val_bpb", "elapsed_s", "tokens_per_s"]


@dataclass
class RunState:
    """What the loop changes besides the weights and the optimizer; saved in trainer_state.pt."""

    rows: list[dict] = field(default_factory=list)  # one per evaluation: metrics.csv
    best_val: float = math.inf  # lowest validation loss so far: the one in model.pt
    loss_sum: float = 0.0  # training losses since the last evaluation, for its train_loss column
    loss_steps: int = 0
    last_saved_step: int | None = None  # the step trainer_state.pt holds (not saved in it)

    def to_dict(self) -> dict:
        return {"rows": self.rows, "best_val": self.best_val, "loss_sum": self.loss_sum,
                "loss_steps": self.loss_steps}


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


@dataclass
class ValidationSet:
    """The fixed validation batches and what turns their loss into comparable numbers."""

    batches: list[tuple[torch.Tensor, torch.Tensor]]
    unigram_loss: float  # cross-entropy of a model that ignores context: the bar to beat
    bytes_per_token: float  # nats/token -> bits/byte


def lm_loss(model: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    x, y = batch  # (B, T) each, already on the device
    _, loss = model(x, targets=y)
    return loss


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


def bytes_per_token(tokens, tokenizer: Tokenizer, sample: int = 1_000_000) -> float:
    """UTF-8 bytes of text per token in a stream, each end-of-document counting as one byte
    (the newline that ended the line). Turns nats/token into bits per byte. Measured on the
    first `sample` tokens: a ratio needs no more, and a huge val split is never decoded whole."""
    tokens = np.asarray(tokens[:sample])
    n_docs = int((tokens == tokenizer.eos_id).sum())
    n_bytes = len(tokenizer.decode(tokens.tolist()).encode("utf-8")) + n_docs
    return n_bytes / len(tokens)


def next_micro_batches(batcher: LMBatcher, n: int, device: torch.device) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The next n (x, y) batches of the stream, on the device: one optimizer step's worth."""
    return [tuple(t.to(device, non_blocking=True) for t in batcher.next_batch()) for _ in range(n)]


def optim_settings(cfg: PretrainConfig) -> OptimSettings:
    settings = OptimSettings(cfg.lr, cfg.min_lr, cfg.warmup_steps, cfg.max_steps, cfg.max_time,
                             cfg.weight_decay, cfg.grad_clip, cfg.grad_accum)
    check_settings(settings)
    return settings


def prepare_tokens(cfg: PretrainConfig, out: Path, ddp: Distributed, resume: bool) -> tuple[Tokenizer, TokenCache]:
    """Train (or, on resume, reload) the tokenizer, then tokenize the corpus into out/tokens.

    Under DDP, rank 0 does the work while the others wait at the barrier, then reuse its files.
    """
    data_path = Path(cfg.data) if cfg.data else ensure_default_data()["unlabeled"]
    tok_path = out / "tokenizer.model"
    if ddp.is_main and not resume:
        print(f"training a {cfg.tokenizer_type} tokenizer with {cfg.vocab_size} pieces on {data_path}")
        Tokenizer.train(data_path, tok_path, cfg.vocab_size, cfg.tokenizer_type)
    if ddp.is_main:
        cache = build_token_cache(data_path, Tokenizer.load(tok_path), out / "tokens", cfg.val_fraction)
    ddp.barrier()
    tokenizer = Tokenizer.load(tok_path)
    if not ddp.is_main:
        cache = build_token_cache(data_path, tokenizer, out / "tokens", cfg.val_fraction)
    return tokenizer, cache


# Settings that decide what the resumed steps compute. Changing one would silently make a
# different run; --max-steps, --max-time, --eval-every and --save-every may change (extend a run).
RESUME_MUST_MATCH = ("data", "vocab_size", "tokenizer_type", "val_fraction", "batch_size", "grad_accum",
                     "eval_batches", "seed")


def check_resume(cfg: PretrainConfig, out: Path, model_cfg: ModelConfig) -> None:
    """--resume continues the saved run only if the flags describe the same run."""
    saved = read_config(out)
    saved_job = {k: saved.get("job", {}).get(k) for k in RESUME_MUST_MATCH}
    wanted_job = {k: getattr(cfg, k) for k in RESUME_MUST_MATCH}
    differ = {k: (saved_job[k], wanted_job[k]) for k in RESUME_MUST_MATCH if saved_job[k] != wanted_job[k]}
    saved_model, wanted_model = saved["model"], model_cfg.to_dict()
    differ.update({k: (v, wanted_model.get(k)) for k, v in saved_model.items() if wanted_model.get(k) != v})
    if differ:
        listed = ", ".join(f"{k}: saved {a!r}, now {b!r}" for k, (a, b) in differ.items())
        raise UserError(f"--resume: the flags describe a different run than {out} holds ({listed}); "
                        f"resume with the original command")


def run(cfg: PretrainConfig) -> PretrainReport | None:
    """Pretrain a MiniLM as `cfg` says; return the final report (also printed and saved).

    Under torchrun every process trains; only rank 0 writes files and returns the report.
    """
    ddp, device = init_distributed(cfg.device)
    dtype = resolve_dtype(cfg.dtype, device)
    settings = optim_settings(cfg)
    out = Path(cfg.out)
    if ddp.is_main:
        claim_out_dir(out, cfg.resume, cfg.overwrite, "pretraining")
    enable_tf32()
    seed_everything(cfg.seed)
    if cfg.resume:
        check_resume(cfg, out, cfg.model_config(cfg.vocab_size))  # before touching data or tokens

    tokenizer, cache = prepare_tokens(cfg, out, ddp, cfg.resume)
    model = MiniLM(cfg.model_config(tokenizer.vocab_size)).to(device)
    T = model.cfg.context_length
    batcher = LMBatcher(cache.train, T, cfg.batch_size, cfg.seed, ddp.rank, ddp.world_size, name="train split")
    val = ValidationSet(fixed_batches(cache.val, T, cfg.batch_size, cfg.eval_batches, seed=cfg.seed),
                        unigram_cross_entropy(cache.train, cache.val, tokenizer.vocab_size),
                        bytes_per_token(cache.val, tokenizer))
    trainer = Trainer(model, settings, device, dtype, distributed=ddp.enabled, compile=cfg.compile)
    state = restore(out, model, trainer, batcher) if cfg.resume else RunState()
    if ddp.is_main:
        if not cfg.resume:
            save_run_config(cfg, model.cfg, tokenizer, out)
        describe_start(cfg, ddp, cache, model, val, trainer, state)

    tokens_per_step = cfg.batch_size * cfg.grad_accum * ddp.world_size * T
    bar = tqdm(total=cfg.max_steps or None, initial=trainer.step_count, disable=not ddp.is_main,
               unit="step", dynamic_ncols=True)
    started = time.perf_counter()
    while not trainer.done:
        loss = train_step(trainer, batcher, cfg.grad_accum, device, state, out)
        tok_s = tokens_per_step * trainer.step_count / max(trainer.elapsed, 1e-9)
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.3f}", lr=f"{trainer.lr:.2e}", tok_s=f"{tok_s:,.0f}")
        if ddp.is_main:
            evaluate_and_save(cfg, out, model, trainer, batcher, val, state, tokens_per_step, tok_s, bar)
        elif trainer.step_count % cfg.eval_every == 0 or trainer.done:
            val_loss(model, val.batches, device, dtype)  # every rank runs the model the same number of times
    bar.close()

    report = None
    if ddp.is_main:
        report = final_report(cfg, out, model, tokenizer, state, val, trainer, tokens_per_step,
                              time.perf_counter() - started, device)
    ddp.close()
    return report


def train_step(trainer: Trainer, batcher: LMBatcher, grad_accum: int, device: torch.device, state: RunState,
               out: Path) -> float:
    """One optimizer step on the next micro-batches; a NaN loss ends the run with one clear line."""
    try:
        loss = trainer.step(next_micro_batches(batcher, grad_accum, device), lm_loss)
    except FloatingPointError as err:
        last = (f"{out / 'trainer_state.pt'} (step {state.last_saved_step})" if state.last_saved_step is not None
                else "none yet")
        raise UserError(f"{err}; training stopped. Last good checkpoint: {last}. Try a lower --lr "
                        f"or --dtype fp32") from None
    state.loss_sum += loss
    state.loss_steps += 1
    return loss


def evaluate_and_save(cfg: PretrainConfig, out: Path, model: MiniLM, trainer: Trainer, batcher: LMBatcher,
                      val: ValidationSet, state: RunState, tokens_per_step: int, tok_s: float, bar) -> None:
    """Every --eval-every steps: validation loss, a metrics row, model.pt if it is the best so far.
    Every --save-every steps, at the end and with every new best: trainer_state.pt (for --resume),
    so the resumable state never lags behind model.pt."""
    step = trainer.step_count
    new_best = False
    if step % cfg.eval_every == 0 or trainer.done:
        loss = val_loss(model, val.batches, trainer.device, trainer.dtype)
        row = {"step": step, "tokens": step * tokens_per_step, "lr": trainer.lr,
               "train_loss": state.loss_sum / state.loss_steps, "val_loss": loss,
               "val_ppl": perplexity(loss), "val_bpb": loss / math.log(2) / val.bytes_per_token,
               "elapsed_s": trainer.elapsed, "tokens_per_s": tok_s}
        state.rows.append(row)
        state.loss_sum, state.loss_steps = 0.0, 0
        bar.write(f"step {step:5d} | train loss {row['train_loss']:.3f} | val loss {loss:.3f} | "
                  f"val ppl {row['val_ppl']:.1f} | val bpb {row['val_bpb']:.3f}")
        new_best = loss < state.best_val
        if new_best:
            state.best_val = loss
            save_torch(model.state_dict(), out / "model.pt")  # best so far: what fine-tuning uses
        save_csv(state.rows, METRIC_COLUMNS, out / "metrics.csv")
        plot_curves(state.rows, "step", ["train_loss", "val_loss"], out / "loss.png", "pretraining loss (nats/token)")
    if step % cfg.save_every == 0 or trainer.done or new_best:
        save_torch({"model": model.state_dict(), "trainer": trainer.state_dict(), "batcher": batcher.state_dict(),
                    "rng": rng_state(), "history": state.to_dict()}, out / "trainer_state.pt")
        state.last_saved_step = step


def restore(out: Path, model: MiniLM, trainer: Trainer, batcher: LMBatcher) -> RunState:
    """--resume: weights, optimizer, schedule, data position and RNG exactly as trainer_state.pt saved them."""
    saved = load_torch(out / "trainer_state.pt")
    model.load_state_dict(saved["model"])
    trainer.load_state_dict(saved["trainer"])
    batcher.load_state_dict(saved["batcher"])
    set_rng_state(saved["rng"])
    return RunState(**saved["history"], last_saved_step=trainer.step_count)


def save_run_config(cfg: PretrainConfig, model_cfg: ModelConfig, tokenizer: Tokenizer, out: Path) -> None:
    save_json({"kind": "pretrain", "model": model_cfg.to_dict(), "job": asdict(cfg),
               "tokenizer": {"fingerprint": tokenizer.fingerprint, "vocab_size": tokenizer.vocab_size},
               "command": command_line(), "torch": torch.__version__}, out / "config.json")


def describe_start(cfg: PretrainConfig, ddp: Distributed, cache: TokenCache, model: MiniLM, val: ValidationSet,
                   trainer: Trainer, state: RunState) -> None:
    meta, mc = cache.meta, model.cfg
    print(f"corpus: {meta['train_tokens']:,} train tokens, {meta['val_tokens']:,} val tokens "
          f"({meta['train_documents']:,} + {meta['val_documents']:,} documents)"
          + (" [token cache reused]" if cache.reused else ""))
    if cfg.resume:
        print(f"resuming {cfg.out} at step {trainer.step_count}")
    tokens_per_step = cfg.batch_size * cfg.grad_accum * ddp.world_size * mc.context_length
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
    samples = generate_samples(model, tokenizer, cfg.num_samples, device, cfg.seed)
    atomic_write(out / "samples.txt", lambda tmp: Path(tmp).write_text("\n\n".join(samples) + "\n"))
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


def find_lr(cfg: PretrainConfig) -> lr_finder.LRFinding:
    """--find-lr: the learning-rate range test (minilm/train/lr_finder.py) on a fresh model; no real run.

    The tokenizer and token cache go to a temporary dir, so --out receives only lr_find.* and
    a finished run there stays exactly as it was.
    """
    ddp, device = init_distributed(cfg.device)
    if ddp.enabled:
        raise UserError("--find-lr runs in one process: start it with python, not torchrun")
    dtype = resolve_dtype(cfg.dtype, device)
    settings = optim_settings(cfg)
    seed_everything(cfg.seed)
    with tempfile.TemporaryDirectory(prefix="minilm-find-lr-") as scratch:
        tokenizer, cache = prepare_tokens(cfg, Path(scratch), ddp, resume=False)
        model = MiniLM(cfg.model_config(tokenizer.vocab_size)).to(device)
        batcher = LMBatcher(cache.train, model.cfg.context_length, cfg.batch_size, cfg.seed, name="train split")
        steps = (next_micro_batches(batcher, cfg.grad_accum, device) for _ in itertools.count())
        return lr_finder.find_lr(Trainer(model, settings, device, dtype), steps, lm_loss, cfg.find_lr_steps,
                                 Path(cfg.out))


def parse_args(argv: list[str] | None = None) -> PretrainConfig:
    parser = argparse.ArgumentParser(
        prog="train_pretrain.py",
        description="Pretrain a MiniLM language model on unlabeled text (next-token prediction).")
    add_flags(parser, PretrainConfig, "pretraining job")
    add_flags(parser, ModelConfig, "model (each overrides the --preset)", skip=("vocab_size",),
              defaults_from_elsewhere=True)
    args = parser.parse_args(argv)
    model_overrides = values_for(args, ModelConfig, skip=("vocab_size",), given_only=True)
    return PretrainConfig(**values_for(args, PretrainConfig, skip=("model",)), model=model_overrides)


@exit_on_user_error
def cli(argv: list[str] | None = None) -> None:
    """The command line (train_pretrain.py and the console script): a range test with --find-lr, else a run."""
    cfg = parse_args(argv)
    find_lr(cfg) if cfg.find_lr else run(cfg)
