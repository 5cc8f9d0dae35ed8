"""The pretraining job: text -> tokenizer -> token cache -> MiniLM trained on next-token prediction.

`run(cfg)` reads top to bottom: out dir -> data -> model -> trainer -> loop -> report. The loop's
mutable state (step count aside, which the Trainer keeps) is one small dataclass, `RunState`
(in resume.py, beside `restore`, which reads it back from trainer_state.pt);
evaluating and saving is one named function, `evaluate_and_save`. `find_lr(cfg)` is the
learning-rate range test; `cli()` parses the flags and picks one of the two. What the run prints
at its start and end (the final report, samples) is in minilm/train/pretrain_report.py.
"""

from __future__ import annotations

import itertools
import math
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import torch

from minilm.common.distributed import Distributed, init_distributed, refuse_torchrun
from minilm.common.errors import UserError, exit_on_user_error
from minilm.common.files import save_csv, save_json, save_torch
from minilm.common.flags import add_flags, command_line, flag_name, make_parser, parse_given, values_for
from minilm.common.plots import plot_curves
from minilm.common.progress import progress
from minilm.common.run_dir import RunDir, check_out_dir, check_writable_dir, claim_out_dir
from minilm.common.runtime import enable_tf32, resolve_dtype, rng_state, seed_everything
from minilm.common.tensorboard import TensorBoardLog, summary_writer_class
from minilm.model.config import ModelConfig
from minilm.model.gpt import MiniLM
from minilm.reviews.world import ensure_default_data
from minilm.text.corpus import corpus_files
from minilm.text.lm_data import LMBatcher, TokenCache, build_token_cache, fixed_batches, unigram_cross_entropy
from minilm.text.tokenizer import Tokenizer
from minilm.tools.metrics import perplexity
from minilm.train import lr_finder
from minilm.train.config import PRESET_JOB_DEFAULTS, PretrainConfig
from minilm.train.pretrain_report import (
    PretrainReport,
    ValidationSet,
    bytes_per_token,
    describe_start,
    final_report,
    val_loss,
)
from minilm.train.resume import RunState, check_resume, restore, resumed_config
from minilm.train.sizing import size_for_budget
from minilm.train.trainer import OptimSettings, StepClock, Trainer, check_settings, planned_steps

METRIC_COLUMNS = ["step", "tokens", "lr", "train_loss", "val_loss", "val_ppl", "val_bpb", "elapsed_s", "tokens_per_s"]


def lm_loss(model: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    x, y = batch  # (B, T) each, already on the device
    _, loss = model(x, targets=y)
    return loss


def next_micro_batches(batcher: LMBatcher, n: int, device: torch.device) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The next n (x, y) batches of the stream, on the device: one optimizer step's worth."""
    return [tuple(t.to(device, non_blocking=True) for t in batcher.next_batch()) for _ in range(n)]


def optim_settings(cfg: PretrainConfig) -> OptimSettings:
    settings = OptimSettings(cfg.lr, cfg.min_lr, cfg.warmup_steps, cfg.max_steps, cfg.max_time,
                             cfg.weight_decay, cfg.grad_clip, cfg.grad_accum, optimizer=cfg.optimizer,
                             schedule=cfg.schedule, decay_fraction=cfg.decay_fraction)
    check_settings(settings)
    return settings


def embedding_lr_scale(cfg: PretrainConfig) -> dict[str, float] | None:
    """The Trainer's lr multiplier for the token embedding and the value embeddings. An embedding row
    only gets a gradient when its token occurs in the batch, so a rare token's row moves rarely: a
    larger lr lets it catch up. Tied to the head it would also speed up the dense output projection,
    which is refused."""
    if cfg.embedding_lr_scale == 1.0:
        return None
    return {"body.token_embedding.": cfg.embedding_lr_scale, "body.value_embeddings.": cfg.embedding_lr_scale}


def corpus_path(cfg: PretrainConfig) -> Path:
    """--data, or the embedded review corpus (generated on first use); its files checked to be text."""
    data_path = Path(cfg.data) if cfg.data else ensure_default_data()["unlabeled"]
    corpus_files(data_path)
    return data_path


def prepare_tokens(cfg: PretrainConfig, out: Path, ddp: Distributed, resume: bool) -> tuple[Tokenizer, TokenCache]:
    """Train (or, on resume, reload) the tokenizer, then tokenize the corpus into out/tokens.

    A new tokenizer stays in memory: the caller saves it once the run is sure to start (with
    --overwrite, the old run's tokenizer.model is still in place until then). Under DDP, rank 0
    does the work (the default data too) while the others wait, then they reuse its files.
    """
    # Under torchrun a new tokenizer reaches the other ranks through the token cache's folder, not
    # out/tokenizer.model: with --overwrite that is still the old run's until the first write.
    handoff = out / "tokens" / "tokenizer.model"
    with ddp.main_first():
        data_path = corpus_path(cfg)
        if resume:
            tokenizer = Tokenizer.load(out / "tokenizer.model")
        elif not ddp.is_main:
            tokenizer = Tokenizer.load(handoff)
        else:
            print(f"training a {cfg.tokenizer_type} tokenizer with {cfg.vocab_size} pieces on {data_path}")
            started = time.perf_counter()
            tokenizer = Tokenizer.train(data_path, None, cfg.vocab_size, cfg.tokenizer_type)
            print(f"tokenizer trained in {time.perf_counter() - started:.1f} s")
            if ddp.enabled:
                tokenizer.save(handoff)  # the other ranks load it once rank 0 is done
        cache = build_token_cache(data_path, tokenizer, out / "tokens", cfg.val_fraction)
    return tokenizer, cache


def run(cfg: PretrainConfig) -> PretrainReport | None:
    """Pretrain a MiniLM as `cfg` says; return the final report (also printed and saved).

    Under torchrun every process trains; only rank 0 writes files and returns the report.
    """
    ddp, device = init_distributed(cfg.device)
    if cfg.tensorboard:
        summary_writer_class()  # a missing package is an error now, before any work
    out = Path(cfg.out)
    if not ddp.is_main:
        return train(cfg, ddp, device, out, run_dir=None)
    # Everything that can be checked without writing is checked before the out dir is claimed.
    optim_settings(cfg)
    check_out_dir(out, cfg.resume, cfg.overwrite)
    if cfg.resume:
        check_resume(cfg, out, cfg.model_config(cfg.vocab_size))  # before touching data or tokens
    corpus_path(cfg)
    with claim_out_dir(out, cfg.resume, cfg.overwrite) as run_dir:
        return train(cfg, ddp, device, out, run_dir)


def train(cfg: PretrainConfig, ddp: Distributed, device: torch.device, out: Path,
          run_dir: RunDir | None) -> PretrainReport | None:
    """The run itself, in a claimed out dir (run_dir is None on the ranks that write nothing)."""
    dtype = resolve_dtype(cfg.dtype, device)
    settings = optim_settings(cfg)
    enable_tf32()
    seed_everything(cfg.seed)
    tokenizer, cache = prepare_tokens(cfg, out, ddp, cfg.resume)
    if cfg.auto_size and not cfg.resume:  # a resumed run has its chosen shape in cfg.model already
        cfg.model.update(size_for_budget(cfg.model_config(tokenizer.vocab_size), settings, cfg.batch_size,
                                         cfg.max_time, device, dtype, ddp))
    model = MiniLM(cfg.model_config(tokenizer.vocab_size)).to(device)
    ddp.seed_dropout(cfg.seed)
    T = model.cfg.context_length
    batcher = LMBatcher(cache.train, T, cfg.batch_size, cfg.seed, ddp.rank, ddp.world_size, name="train split")
    val = ValidationSet(fixed_batches(cache.val, T, cfg.batch_size, cfg.eval_batches, seed=cfg.seed),
                        unigram_cross_entropy(cache.train, cache.val, tokenizer.vocab_size),
                        bytes_per_token(cache.meta))
    trainer = Trainer(model, settings, device, dtype, lr_scale=embedding_lr_scale(cfg), distributed=ddp.enabled,
                      compile=cfg.compile)
    tensorboard = TensorBoardLog(cfg.tensorboard and ddp.is_main, out / "tensorboard")
    state = restore(out, model, trainer, batcher, ddp, device) if cfg.resume else RunState()
    if cfg.resume and trainer.done:  # nothing to train: refuse rather than rewrite the finished run's report
        raise UserError(f"{out} already finished its {trainer.step_count} steps; pass a larger --max-steps (or "
                        f"--max-time) with --resume to train it further")
    tokens_per_step = cfg.batch_size * cfg.grad_accum * ddp.world_size * T
    if run_dir is not None:
        if not cfg.resume:
            run_dir.replace_old_run()  # --overwrite: the first write of the new run is next
            tokenizer.save(out / "tokenizer.model")
            save_run_config(cfg, model.cfg, tokenizer, out)
        describe_start(cfg, cache, model, val, trainer, tokens_per_step)

    bar = progress(total=planned_steps(trainer), initial=trainer.step_count, unit="step", desc="pretraining",
                   enabled=ddp.is_main)
    started = time.perf_counter()
    clock = StepClock(trainer)
    while not trainer.done:
        loss = train_step(trainer, batcher, cfg.grad_accum, device, state, out)
        if trainer.last_step_skipped and not trainer.done:
            continue  # fp16 overflow: no update, the step count stays, the scaler lowered its scale
        tok_s = show_step(bar, clock, trainer, loss, tokens_per_step)
        evaluate_and_save(cfg, out, model, trainer, batcher, val, state, tokens_per_step, tok_s, bar, ddp,
                          tensorboard)
    bar.refresh()
    bar.close()
    tensorboard.close()

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
    if not trainer.last_step_skipped:  # an fp16 overflow step did not train: its loss is not averaged
        state.loss_sum += loss
        state.loss_steps += 1
    return loss


def checkpoint_due(cfg: PretrainConfig, trainer: Trainer) -> bool:
    """Whether evaluate_and_save may evaluate or save after this step (so every rank's RNG is needed)."""
    step = trainer.step_count
    return step % cfg.eval_every == 0 or step % cfg.save_every == 0 or trainer.done


def show_step(bar, clock: StepClock, trainer: Trainer, loss: float, tokens_per_step: int) -> float:
    """Move the progress bar on by one step (and say the ETA once); return tokens/s so far."""
    tok_s = tokens_per_step * trainer.step_count / max(trainer.elapsed, 1e-9)
    bar.total = planned_steps(trainer)
    bar.update(1)
    bar.set_postfix(loss=f"{loss:.3f}", lr=f"{trainer.lr:.2e}", tok_s=f"{tok_s:,.0f}")
    clock.announce_eta(bar)
    return tok_s


def evaluate_and_save(cfg: PretrainConfig, out: Path, model: MiniLM, trainer: Trainer, batcher: LMBatcher,
                      val: ValidationSet, state: RunState, tokens_per_step: int, tok_s: float, bar,
                      ddp: Distributed, tensorboard: TensorBoardLog) -> None:
    """Every --eval-every steps: validation loss, a metrics row, model.pt if it is the best so far.
    Every --save-every steps, at the end and with every new best: trainer_state.pt (for --resume),
    so the resumable state never lags behind model.pt. Under torchrun only rank 0 writes; the
    others evaluate too, so they reach the next step's gradient exchange about when rank 0 does
    (time spent waiting there would count as training time on their clocks), and hand over
    their RNG states, so a resume continues every rank exactly."""
    step = trainer.step_count
    rngs = ddp.gather(rng_state(trainer.device)) if checkpoint_due(cfg, trainer) else []
    if not ddp.is_main:
        if step % cfg.eval_every == 0 or trainer.done:
            val_loss(model, val.batches, trainer.device, trainer.dtype)
        return
    new_best = False
    if (step % cfg.eval_every == 0 or trainer.done) and not (state.rows and state.rows[-1]["step"] == step):
        loss = val_loss(model, val.batches, trainer.device, trainer.dtype)
        row = {"step": step, "tokens": step * tokens_per_step, "lr": trainer.lr,
               "train_loss": state.loss_sum / state.loss_steps, "val_loss": loss,
               "val_ppl": perplexity(loss), "val_bpb": loss / math.log(2) / val.bytes_per_token,
               "elapsed_s": trainer.elapsed, "tokens_per_s": tok_s}
        state.rows.append(row)
        tensorboard.log(row, step)
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
                    "rng": rngs, "world_size": len(rngs), "history": state.to_dict()}, out / "trainer_state.pt")
        state.last_saved_step = step


def save_run_config(cfg: PretrainConfig, model_cfg: ModelConfig, tokenizer: Tokenizer, out: Path) -> None:
    save_json({"kind": "pretrain", "model": model_cfg.to_dict(), "job": asdict(cfg),
               "tokenizer": {"fingerprint": tokenizer.fingerprint, "vocab_size": tokenizer.vocab_size},
               "command": command_line(), "torch": torch.__version__}, out / "config.json")


def find_lr(cfg: PretrainConfig) -> lr_finder.LRFinding:
    """--find-lr: the learning-rate range test (minilm/train/lr_finder.py) on a fresh model; no real run.

    The tokenizer and token cache go to a temporary dir, so --out receives only lr_find.* and
    a finished run there stays exactly as it was.
    """
    refuse_torchrun("--find-lr")
    ddp, device = init_distributed(cfg.device)
    check_writable_dir(Path(cfg.out))
    dtype = resolve_dtype(cfg.dtype, device)
    settings = optim_settings(cfg)
    seed_everything(cfg.seed)
    with tempfile.TemporaryDirectory(prefix="minilm-find-lr-") as scratch:
        tokenizer, cache = prepare_tokens(cfg, Path(scratch), ddp, resume=False)
        model = MiniLM(cfg.model_config(tokenizer.vocab_size)).to(device)
        batcher = LMBatcher(cache.train, model.cfg.context_length, cfg.batch_size, cfg.seed, name="train split")
        steps = (next_micro_batches(batcher, cfg.grad_accum, device) for _ in itertools.count())
        trainer = Trainer(model, settings, device, dtype, lr_scale=embedding_lr_scale(cfg))
        return lr_finder.find_lr(trainer, steps, lm_loss, cfg.find_lr_steps, Path(cfg.out))


def parse_args(argv: list[str] | None = None) -> PretrainConfig:
    parser = make_parser("pretrain", "Pretrain a MiniLM language model on unlabeled text (next-token "
                                     "prediction). With --resume, the run's settings come from its config.json.")
    add_flags(parser, PretrainConfig, "pretraining job")
    add_flags(parser, ModelConfig, "model (each overrides the --preset)", skip=("vocab_size",),
              defaults_from_elsewhere=True)
    # a flag the user gives beats the preset's job default, which beats the field's default
    parser.set_defaults(**PRESET_JOB_DEFAULTS.get(parser.parse_known_args(argv)[0].preset, {}))
    args, given = parse_given(parser, argv)
    if args.resume:
        return resumed_config(args, given)
    apply_time_budget(args, given)
    model_overrides = values_for(args, ModelConfig, skip=("vocab_size",), given_only=True)
    return PretrainConfig(**values_for(args, PretrainConfig, skip=("model",)), model=model_overrides)


SIZE_FLAGS = ("preset", "n_layer", "n_head", "d_model", "context_length", "d_ff")


def apply_time_budget(args, given: set[str]) -> None:
    """--max-time N without --max-steps means "train N minutes" (the step budget is dropped), and
    with no size flag either, a model sized for those minutes (--auto-size)."""
    if "max_time" in given and "max_steps" not in given and args.max_time > 0:
        args.max_steps = 0
        if "auto_size" not in given and not given & set(SIZE_FLAGS):
            args.auto_size = True
    if args.auto_size and given & set(SIZE_FLAGS):
        flags = ", ".join(flag_name(name) for name in sorted(given & set(SIZE_FLAGS)))
        raise UserError(f"--auto-size picks the model's size itself, and {flags} sets it: pass one or the other")


@exit_on_user_error
def cli(argv: list[str] | None = None) -> None:
    """The command line (train_pretrain.py and the console script): a range test with --find-lr, else a run."""
    cfg = parse_args(argv)
    find_lr(cfg) if cfg.find_lr else run(cfg)
