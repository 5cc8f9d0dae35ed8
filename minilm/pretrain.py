"""The pretraining job: text -> tokenizer -> token cache -> MiniLM trained on next-token prediction.

Reads top to bottom: config -> out dir -> data -> model -> trainer -> loop -> report.
`run(cfg)` is what train_pretrain.py and the tests call; `cli()` parses the flags.
"""

from __future__ import annotations

import argparse
import itertools
import math
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from minilm.checkpoint import atomic_write, claim_out_dir, load_torch, read_config, save_csv, save_json, save_torch
from minilm.cli import add_flags, command_line, values_for
from minilm.config import ModelConfig, PretrainConfig
from minilm.errors import UserError, exit_on_user_error
from minilm.lm_data import LMBatcher, build_token_cache, fixed_batches, unigram_cross_entropy
from minilm.lr_finder import find_lr
from minilm.metrics import perplexity
from minilm.model import MiniLM
from minilm.plots import plot_curves
from minilm.reviews_world import ensure_default_data
from minilm.runtime import (
    autocast,
    enable_tf32,
    init_distributed,
    resolve_dtype,
    rng_state,
    seed_everything,
    set_rng_state,
)
from minilm.tokenizer import Tokenizer
from minilm.trainer import OptimSettings, Trainer, check_settings

METRIC_COLUMNS = ["step", "tokens", "lr", "train_loss", "val_loss", "val_ppl", "val_bpb", "elapsed_s", "tokens_per_s"]


def lm_loss(model: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    x, y = batch  # (B, T) each, already on the device
    _, loss = model(x, targets=y)
    return loss


@torch.no_grad()
def evaluate(model: MiniLM, batches: list, device: torch.device, dtype: torch.dtype) -> float:
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


def prepare_tokens(cfg: PretrainConfig, out: Path, data_path: Path, ddp, resume: bool):
    """Train (or, on resume, reload) the tokenizer, then tokenize the corpus into out/tokens.

    Under DDP, rank 0 does the work while the others wait at the barrier, then reuse its files.
    """
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


def run(cfg: PretrainConfig) -> dict:
    """Pretrain a MiniLM as `cfg` says; return the final report (also printed and saved)."""
    ddp, device = init_distributed(cfg.device)
    dtype = resolve_dtype(cfg.dtype, device)
    settings = OptimSettings(cfg.lr, cfg.min_lr, cfg.warmup_steps, cfg.max_steps, cfg.max_time,
                             cfg.weight_decay, cfg.grad_clip, cfg.grad_accum)
    check_settings(settings)
    out = Path(cfg.out)
    if cfg.find_lr:
        return find_pretrain_lr(cfg, settings, ddp, device, dtype)
    if ddp.is_main:
        claim_out_dir(out, cfg.resume, cfg.overwrite, "pretraining")
    enable_tf32()
    seed_everything(cfg.seed)
    log = print if ddp.is_main else (lambda *a, **k: None)

    # -- data --------------------------------------------------------------------------------
    if cfg.resume:
        check_resume(cfg, out, cfg.model_config(cfg.vocab_size))  # before touching data or tokens
    data_path = Path(cfg.data) if cfg.data else ensure_default_data()["unlabeled"]
    tokenizer, cache = prepare_tokens(cfg, out, data_path, ddp, cfg.resume)
    log(f"corpus: {cache.meta['train_tokens']:,} train tokens, {cache.meta['val_tokens']:,} val tokens "
        f"({cache.meta['train_documents']:,} + {cache.meta['val_documents']:,} documents)"
        + (" [token cache reused]" if cache.reused else ""))

    # -- model -------------------------------------------------------------------------------
    model_cfg = cfg.model_config(tokenizer.vocab_size)
    T = model_cfg.context_length
    model = MiniLM(model_cfg).to(device)
    batcher = LMBatcher(cache.train, T, cfg.batch_size, cfg.seed, ddp.rank, ddp.world_size, name="train split")
    val_batches = fixed_batches(cache.val, T, cfg.batch_size, cfg.eval_batches, seed=cfg.seed)
    unigram = unigram_cross_entropy(cache.train, cache.val, tokenizer.vocab_size)
    val_bytes_per_token = bytes_per_token(cache.val, tokenizer)

    trainer = Trainer(model, settings, device, dtype, distributed=ddp.enabled, compile=cfg.compile)
    history = {"rows": [], "best_val": math.inf, "loss_sum": 0.0, "loss_steps": 0}
    if cfg.resume:
        state = load_torch(out / "trainer_state.pt")
        model.load_state_dict(state["model"])
        trainer.load_state_dict(state["trainer"])
        batcher.load_state_dict(state["batcher"])
        set_rng_state(state["rng"])
        history = state["history"]
        log(f"resuming {out} at step {trainer.step_count}")
    else:
        if ddp.is_main:
            save_json({"kind": "pretrain", "model": model_cfg.to_dict(), "job": asdict(cfg),
                       "tokenizer": {"fingerprint": tokenizer.fingerprint, "vocab_size": tokenizer.vocab_size},
                       "command": command_line(), "torch": torch.__version__}, out / "config.json")

    tokens_per_step = cfg.batch_size * cfg.grad_accum * ddp.world_size * T
    log(f"model: {model.num_parameters():,} parameters ({model_cfg.n_layer} layers x {model_cfg.d_model} wide, "
        f"{model_cfg.n_head} heads, context {T}, {model_cfg.pos_encoding} positions) on {device} {dtype}; "
        f"{tokens_per_step:,} tokens per step")
    log(f"unigram baseline (no context): val loss {unigram:.3f}, perplexity {perplexity(unigram):,.1f}")

    last_saved = {"step": trainer.step_count if cfg.resume else None}

    def save_state() -> None:
        save_torch({"model": model.state_dict(), "trainer": trainer.state_dict(), "batcher": batcher.state_dict(),
                    "rng": rng_state(), "history": history}, out / "trainer_state.pt")
        last_saved["step"] = trainer.step_count

    # -- the loop ----------------------------------------------------------------------------
    bar = tqdm(total=cfg.max_steps or None, initial=trainer.step_count, disable=not ddp.is_main,
               unit="step", dynamic_ncols=True)
    started = time.perf_counter()
    while not trainer.done:
        try:
            loss = trainer.step(next_micro_batches(batcher, cfg.grad_accum, device), lm_loss)
        except FloatingPointError as err:
            last = (f"{out / 'trainer_state.pt'} (step {last_saved['step']})" if last_saved["step"] is not None
                    else "none yet")
            raise UserError(f"{err}; training stopped. Last good checkpoint: {last}. Try a lower --lr "
                            f"or --dtype fp32") from None
        history["loss_sum"] += loss
        history["loss_steps"] += 1
        step = trainer.step_count
        tok_s = tokens_per_step * step / max(trainer.elapsed, 1e-9)
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.3f}", lr=f"{trainer.lr:.2e}", tok_s=f"{tok_s:,.0f}")
        new_best = False
        if step % cfg.eval_every == 0 or trainer.done:
            val = evaluate(model, val_batches, device, dtype)
            row = {"step": step, "tokens": step * tokens_per_step, "lr": trainer.lr,
                   "train_loss": history["loss_sum"] / history["loss_steps"], "val_loss": val,
                   "val_ppl": perplexity(val), "val_bpb": val / math.log(2) / val_bytes_per_token,
                   "elapsed_s": trainer.elapsed, "tokens_per_s": tok_s}
            history["rows"].append(row)
            history["loss_sum"], history["loss_steps"] = 0.0, 0
            if ddp.is_main:
                bar.write(f"step {step:5d} | train loss {row['train_loss']:.3f} | val loss {val:.3f} | "
                          f"val ppl {row['val_ppl']:.1f} | val bpb {row['val_bpb']:.3f}")
                new_best = val < history["best_val"]
                if new_best:
                    history["best_val"] = val
                    save_torch(model.state_dict(), out / "model.pt")  # best so far: what fine-tuning uses
                write_metrics(history["rows"], out)
        # The resumable state is saved with every new best too, so it never lags behind model.pt.
        if ddp.is_main and (step % cfg.save_every == 0 or trainer.done or new_best):
            save_state()
    bar.close()

    report = {}
    if ddp.is_main:
        report = final_report(cfg, out, model, tokenizer, history, unigram, trainer, tokens_per_step,
                              time.perf_counter() - started, device)
    ddp.close()
    return report


def find_pretrain_lr(cfg: PretrainConfig, settings: OptimSettings, ddp, device: torch.device,
                     dtype: torch.dtype) -> dict:
    """--find-lr: the learning-rate range test (minilm/lr_finder.py) on a fresh model; no real run.

    The tokenizer and token cache go to a temporary dir, so --out receives only lr_find.* and
    a finished run there stays exactly as it was.
    """
    if ddp.enabled:
        raise UserError("--find-lr runs in one process: start it with python, not torchrun")
    seed_everything(cfg.seed)
    data_path = Path(cfg.data) if cfg.data else ensure_default_data()["unlabeled"]
    with tempfile.TemporaryDirectory(prefix="minilm-find-lr-") as scratch:
        tokenizer, cache = prepare_tokens(cfg, Path(scratch), data_path, ddp, resume=False)
        model = MiniLM(cfg.model_config(tokenizer.vocab_size)).to(device)
        batcher = LMBatcher(cache.train, model.cfg.context_length, cfg.batch_size, cfg.seed, name="train split")
        steps = (next_micro_batches(batcher, cfg.grad_accum, device) for _ in itertools.count())
        return find_lr(Trainer(model, settings, device, dtype), steps, lm_loss, cfg.find_lr_steps, Path(cfg.out))


def write_metrics(rows: list[dict], out: Path) -> None:
    save_csv(rows, METRIC_COLUMNS, out / "metrics.csv")
    plot_curves(rows, "step", ["train_loss", "val_loss"], out / "loss.png", "pretraining loss (nats/token)")


def final_report(cfg, out, model, tokenizer, history, unigram, trainer, tokens_per_step, wall, device) -> dict:
    """Print and save what the run achieved, with generated samples from the best weights."""
    model.load_state_dict(load_torch(out / "model.pt"))
    best = history["best_val"]
    best_row = min(history["rows"], key=lambda r: r["val_loss"])
    samples = generate_samples(model, tokenizer, cfg.num_samples, device, cfg.seed)
    atomic_write(out / "samples.txt", lambda tmp: Path(tmp).write_text("\n\n".join(samples) + "\n"))
    report = {"steps": trainer.step_count, "tokens_seen": trainer.step_count * tokens_per_step,
              "train_seconds": trainer.elapsed, "wall_seconds": wall, "best_val_loss": best,
              "best_val_ppl": perplexity(best), "best_val_bpb": best_row["val_bpb"],
              "unigram_val_loss": unigram, "unigram_val_ppl": perplexity(unigram),
              "parameters": model.num_parameters()}
    save_json(report, out / "report.json")
    print(f"\ndone: {report['steps']} steps, {report['tokens_seen']:,} tokens in {trainer.elapsed / 60:.1f} min "
          f"of training ({wall / 60:.1f} min wall)")
    print(f"best val loss {best:.3f} (perplexity {perplexity(best):.1f}, {best_row['val_bpb']:.3f} bits/byte) "
          f"vs unigram baseline {unigram:.3f} (perplexity {perplexity(unigram):.1f})")
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
    """The command line (train_*.py and the console script); returns None so the exit status is 0."""
    run(parse_args(argv))
