"""The fine-tuning job: a pretrained MiniLM + a classification head, trained on labeled text.

    θ* = argmin_θ  Σ_i  L(y_i, f(x_i; θ))      L = cross-entropy (+ λ · LM loss, GPT-1)

`run(cfg)` reads top to bottom: data -> out dir -> model (from the pretrained dir, or random) ->
train with the shared Trainer, keeping the epoch with the best valid macro-F1 -> test report.
`--compare-scratch` repeats the same recipe from random weights, which shows what pretraining
bought. `find_lr(cfg)` is the learning-rate range test; `--predict` classifies new texts. The
reports (metrics, tables, predictions.tsv) are in minilm/train/finetune_report.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from minilm.checkpoint import lm_from_dir, load_checked_tokenizer, load_model_config, read_config
from minilm.common.distributed import Distributed, init_distributed, refuse_torchrun
from minilm.common.errors import UserError, exit_on_user_error
from minilm.common.files import load_torch, save_csv, save_json, save_torch
from minilm.common.flags import command_for, command_line, parse_config
from minilm.common.plots import plot_curves
from minilm.common.progress import progress
from minilm.common.run_dir import SCRATCH_DIR, check_out_dir, check_writable_dir, claim_out_dir
from minilm.common.runtime import enable_tf32, resolve_device, resolve_dtype, seed_everything
from minilm.common.tensorboard import TensorBoardLog, summary_writer_class
from minilm.model.classifier import MiniLMForSequenceClassification, freeze_layers
from minilm.model.config import ModelConfig
from minilm.model.lora import add_lora, merge_lora, merged_state_dict
from minilm.text.labeled import LabelMap, classification_batches
from minilm.text.tokenizer import Tokenizer
from minilm.tools.predict import run_predict
from minilm.train import lr_finder
from minilm.train.config import FinetuneConfig
from minilm.train.finetune_recipe import layer_lr_scales, linear_probe, make_loss_fn
from minilm.train.finetune_report import FinetuneReport, evaluate_split, format_comparison, report_splits
from minilm.train.labeled_splits import Split, class_weight_tensor, endless_batches, epoch_sequences, load_splits
from minilm.train.trainer import OptimSettings, Trainer, check_settings, planned_steps

METRIC_COLUMNS = ["epoch", "step", "lr", "train_loss", "valid_loss", "valid_accuracy", "valid_macro_f1"]


def build_model(cfg: FinetuneConfig, init: str, num_labels: int) -> MiniLMForSequenceClassification:
    """A classifier from a pretrained dir (a fine-tuned dir's body works too), or random with --ckpt scratch."""
    if init == "scratch":
        shape = replace(load_model_config(cfg.shape_from), dropout=cfg.dropout)
        stride, windows = cfg.windows_for(shape.context_length)
        return MiniLMForSequenceClassification(shape, num_labels, cfg.pooling, head_bias=cfg.head_bias,
                                               window_stride=stride, max_windows=windows)
    lm = lm_from_dir(init)
    stride, windows = cfg.windows_for(lm.cfg.context_length)
    return MiniLMForSequenceClassification.from_pretrained_lm(lm, num_labels, cfg.pooling, cfg.dropout,
                                                              cfg.head_bias, stride, windows)


def prepare_training(cfg: FinetuneConfig, init: str, train: Split, num_labels: int, device: torch.device,
                     dtype: torch.dtype, ddp: Distributed) -> tuple[MiniLMForSequenceClassification, Trainer, Callable]:
    """A fresh classifier from `init`, frozen as --freeze says, its Trainer, and its loss function.

    Under torchrun each rank computes the loss of its slice of every batch (split_batch), so
    --batch-size stays the global batch and the run matches one process.
    """
    seed_everything(cfg.seed)
    model = build_model(cfg, init, num_labels).to(device)
    ddp.seed_dropout(cfg.seed)
    weights = class_weight_tensor(train, num_labels, device) if cfg.class_weights == "auto" else None
    if cfg.probe_steps:
        linear_probe(cfg, model, train, make_loss_fn(cfg, device, weights, Distributed()), device, dtype, ddp)
    freeze_layers(model, "body" if cfg.lora_rank else cfg.freeze)
    if cfg.lora_rank:
        add_lora(model.body, cfg.lora_rank, cfg.lora_alpha or 2.0 * cfg.lora_rank)
    if not cfg.lm_loss_weight and not model.cfg.tie_weights:
        # An untied LM head only learns from the auxiliary LM loss; without it no gradient ever
        # reaches the head, and DistributedDataParallel would wait for one.
        model.lm_head.requires_grad_(False)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if ddp.is_main:
        how = f"--lora-rank {cfg.lora_rank}: adapters and head" if cfg.lora_rank else f"--freeze {cfg.freeze}"
        print(f"[{init}] {trainable:,} of {model.num_parameters():,} parameters train ({how})")
    steps_per_epoch = -(-len(train.seqs) // cfg.batch_size)
    max_steps = min(cfg.max_steps or cfg.epochs * steps_per_epoch, cfg.epochs * steps_per_epoch)
    settings = OptimSettings(cfg.lr, cfg.min_lr, min(cfg.warmup_steps, max_steps - 1), max_steps, cfg.max_time,
                             cfg.weight_decay, cfg.grad_clip)
    check_settings(settings)
    trainer = Trainer(model, settings, device, dtype, lr_scale=layer_lr_scales(cfg, model.cfg.n_layer),
                      distributed=ddp.enabled)
    return model, trainer, make_loss_fn(cfg, device, weights, ddp)


@dataclass
class EpochState:
    """What the epoch loop changes besides the weights: the metrics rows and early stopping."""

    rows: list[dict] = field(default_factory=list)  # one per epoch: metrics.csv
    best_valid: dict | None = None  # valid report of the best epoch so far: the epoch in model.pt
    stale: int = 0  # epochs since it improved (--patience)

    def improves(self, report: dict) -> bool:
        """Whether this valid report beats the best: a higher macro-F1, or the same one with a lower
        loss. The tie matters on easy data, where several epochs score a perfect 1.0 and the later,
        more confident one generalises better (the embedded demo's transfer split: 1.000 vs 0.997)."""
        best = self.best_valid
        if best is None:
            return True
        if report["macro_f1"] != best["macro_f1"]:
            return report["macro_f1"] > best["macro_f1"]
        return report["loss"] < best["loss"]


def train_classifier(cfg: FinetuneConfig, init: str, prepared: tuple, splits: dict[str, Split], labels: LabelMap,
                     tokenizer: Tokenizer, out: Path, ddp: Distributed
                     ) -> tuple[MiniLMForSequenceClassification, dict | None]:
    """Fine-tune the model prepare_training made from `init` (a dir or "scratch"); keep the best valid
    epoch in out/model.pt and return it with its valid report (None on the ranks that do not evaluate).

    Under torchrun every rank trains; rank 0 alone evaluates, writes, and decides early stopping.
    """
    model, trainer, loss_fn = prepared
    state = EpochState()
    tensorboard = TensorBoardLog(cfg.tensorboard and ddp.is_main, out / "tensorboard")
    bar = progress(total=trainer.settings.max_steps, unit="step", desc=f"fine-tuning ({init})", enabled=ddp.is_main)
    for epoch in range(1, cfg.epochs + 1):
        losses = train_epoch(cfg, trainer, loss_fn, splits["train"], tokenizer, epoch, bar, out)
        if ddp.is_main:
            end_epoch(cfg, model, trainer, splits["valid"], labels, state, epoch, sum(losses) / len(losses), out, bar)
            tensorboard.log(state.rows[-1], trainer.step_count)
        if trainer.done or clock_nearly_out(trainer) or \
                ddp.main_decides(bool(cfg.patience) and state.stale >= cfg.patience):
            break
    bar.total = trainer.step_count  # early stopping ends the run before its planned steps: 100% all the same
    bar.refresh()
    bar.close()
    tensorboard.close()
    merge_lora(model)  # a plain model again (no-op without --lora-rank): model.pt holds merged weights
    if ddp.is_main:
        model.load_state_dict(load_torch(out / "model.pt"))  # the best epoch, not the last
    return model, state.best_valid


def clock_nearly_out(trainer: Trainer) -> bool:
    """With --max-time: under 1% of the minutes left. Another epoch would take a few steps at a
    learning rate already decayed to its floor (they change nothing) and then a whole evaluation."""
    return bool(trainer.settings.max_time) and trainer.progress > 0.99


def train_epoch(cfg: FinetuneConfig, trainer: Trainer, loss_fn: Callable, train: Split, tokenizer: Tokenizer,
                epoch: int, bar, out: Path) -> list[float]:
    """One pass over the shuffled training set (or until the step budget ends); the step losses."""
    losses = []
    seqs = epoch_sequences(cfg, train, tokenizer, epoch, trainer.model.cfg.context_length)
    for batch in classification_batches(seqs, train.label_ids, cfg.batch_size, Tokenizer.pad_id, shuffle=True,
                                        seed=cfg.seed, epoch=epoch):
        try:
            losses.append(trainer.step([batch], loss_fn))
        except FloatingPointError as err:
            raise UserError(f"{err}; fine-tuning stopped (the best epoch so far is in {out / 'model.pt'}). "
                            f"Try a lower --lr or --dtype fp32") from None
        bar.total = planned_steps(trainer)  # with --max-time: the steps the clock allows at this pace
        bar.update(1)
        bar.set_postfix(loss=f"{losses[-1]:.3f}", lr=f"{trainer.lr:.2e}")
        if trainer.done:
            break
    return losses


def end_epoch(cfg: FinetuneConfig, model, trainer: Trainer, valid: Split, labels: LabelMap, state: EpochState,
              epoch: int, train_loss: float, out: Path, bar) -> None:
    """Evaluate on valid, add the metrics row, keep the weights if this epoch is the best so far."""
    report, _ = evaluate_split(model, valid, labels, trainer.device, trainer.dtype, cfg.batch_size)
    state.rows.append({"epoch": epoch, "step": trainer.step_count, "lr": trainer.lr, "train_loss": train_loss,
                       "valid_loss": report["loss"], "valid_accuracy": report["accuracy"],
                       "valid_macro_f1": report["macro_f1"]})
    bar.write(f"epoch {epoch} | train loss {train_loss:.4f} | valid loss {report['loss']:.4f} | "
              f"valid acc {report['accuracy']:.4f} | valid macro-F1 {report['macro_f1']:.4f}")
    if state.improves(report):
        state.best_valid, state.stale = report, 0
        save_torch(merged_state_dict(model), out / "model.pt")  # with LoRA: the adapters added into the weights
    else:
        state.stale += 1
    save_csv(state.rows, METRIC_COLUMNS, out / "metrics.csv")
    plot_curves(state.rows, "epoch", ["train_loss", "valid_loss"], out / "loss.png", "fine-tuning loss")


def open_source(cfg: FinetuneConfig) -> tuple[dict, Tokenizer]:
    """The config.json and tokenizer of the dir the classifier starts from (or copies its shape from)."""
    source = cfg.shape_from if cfg.init == "scratch" else cfg.init
    if not Path(source).is_dir():
        raise UserError(f"{source} does not exist: make a pretrained model first with `{command_for('pretrain')}`"
                        f" (or pass --ckpt DIR, or --ckpt scratch --shape-from DIR)")
    source_config = read_config(source)
    return source_config, load_checked_tokenizer(Path(source), source_config)


def prepare_data(cfg: FinetuneConfig) -> tuple[dict, Tokenizer, dict[str, Split], LabelMap]:
    """Source config and tokenizer, then every labeled split read and tokenized to fit the context."""
    source_config, tokenizer = open_source(cfg)
    context = source_config["model"]["context_length"]
    stride, windows = cfg.windows_for(context)
    longest = context + (windows - 1) * stride  # what the classifier reads whole (see max_input_tokens)
    splits, labels = load_splits(cfg, tokenizer, min(cfg.max_length or longest, longest), head_and_tail=bool(stride))
    sizes = ", ".join(f"{name} {len(split.seqs)}" for name, split in splits.items())
    print(f"labels: {', '.join(labels.names)} | examples: {sizes}")
    return source_config, tokenizer, splits, labels


def save_run_files(cfg: FinetuneConfig, out: Path, source_config: dict, tokenizer: Tokenizer,
                   labels: LabelMap) -> None:
    """Labels, tokenizer and config go in first: whatever model.pt a crash leaves, they describe it."""
    tokenizer.save(out / "tokenizer.model")
    labels.save(out / "labels.json")
    model_cfg = ModelConfig.from_dict({**source_config["model"], "dropout": cfg.dropout})
    stride, windows = cfg.windows_for(model_cfg.context_length)
    save_json({"kind": "finetune", "model": model_cfg.to_dict(),
               "classifier": {"num_labels": len(labels), "pooling": cfg.pooling, "head_bias": cfg.head_bias,
                              "labels": labels.names, "window_stride": stride, "max_windows": windows},
               "tokenizer": {"fingerprint": tokenizer.fingerprint, "vocab_size": tokenizer.vocab_size},
               "init": cfg.init, "job": asdict(cfg), "command": command_line(), "torch": torch.__version__},
              out / "config.json")


def run(cfg: FinetuneConfig) -> FinetuneReport | None:
    """Fine-tune as `cfg` says, report on the held-out splits; return the report (also saved).

    Under torchrun the ranks share every batch (data-parallel); only rank 0 evaluates, writes
    --out and returns the report.
    """
    ddp, device = init_distributed(cfg.device)
    dtype = resolve_dtype(cfg.dtype, device)
    if cfg.tensorboard:
        summary_writer_class()  # a missing package is an error now, before any work
    out = Path(cfg.out)
    # Everything that can be checked without writing is checked before the out dir is claimed
    # (on every rank, so under torchrun they all stop at a bad flag, none waits for the others).
    check_sources_survive(cfg)
    check_out_dir(out, resume=False, overwrite=cfg.overwrite, can_resume=False)
    with ddp.main_first(), ddp.only_main_speaks():  # rank 0 generates the default data if it is missing
        source_config, tokenizer, splits, labels = prepare_data(cfg)
    prepared = prepare_training(cfg, cfg.init, splits["train"], len(labels), device, dtype, ddp)
    enable_tf32()
    if not ddp.is_main:
        return train_and_report(cfg, prepared, splits, labels, tokenizer, out, device, dtype, ddp)
    with claim_out_dir(out, resume=False, overwrite=cfg.overwrite, can_resume=False) as run_dir:
        run_dir.replace_old_run()  # --overwrite: the first write of the new run is next
        save_run_files(cfg, out, source_config, tokenizer, labels)
        return train_and_report(cfg, prepared, splits, labels, tokenizer, out, device, dtype, ddp)


def check_sources_survive(cfg: FinetuneConfig) -> None:
    """--out must not be the dir the model starts from: --overwrite would delete it first."""
    out = Path(cfg.out).resolve()
    sources = {"--ckpt": cfg.init} if cfg.init != "scratch" else {}
    if cfg.init == "scratch" or cfg.compare_scratch:
        sources["--shape-from"] = cfg.shape_from if cfg.init == "scratch" else cfg.init
    for flag, source in sources.items():
        if Path(source).resolve() == out:
            raise UserError(f"--out {cfg.out} is the {flag} dir: fine-tuning would replace the model it starts "
                            f"from; choose another --out")


def train_and_report(cfg: FinetuneConfig, prepared: tuple, splits: dict[str, Split], labels: LabelMap,
                     tokenizer: Tokenizer, out: Path, device: torch.device, dtype: torch.dtype,
                     ddp: Distributed) -> FinetuneReport | None:
    """Train, report on the held-out splits (and, with --compare-scratch, the same from random weights).
    Only rank 0 evaluates, writes and returns the report."""
    model, best_valid = train_classifier(cfg, cfg.init, prepared, splits, labels, tokenizer, out, ddp)
    report = None
    if ddp.is_main:
        report = FinetuneReport(report_splits(model, splits, labels, device, dtype, cfg.batch_size, out,
                                              f"fine-tuned from {cfg.init}", best_valid))
    ddp.wait_for_all()  # the other ranks wait (long timeout) while rank 0 evaluates
    if cfg.compare_scratch and cfg.init != "scratch":
        scratch_out = out / SCRATCH_DIR
        if ddp.is_main:
            scratch_out.mkdir(exist_ok=True)
        scratch_cfg = replace(cfg, shape_from=cfg.init)
        scratch_prepared = prepare_training(scratch_cfg, "scratch", splits["train"], len(labels), device, dtype, ddp)
        scratch_model, scratch_valid = train_classifier(scratch_cfg, "scratch", scratch_prepared, splits, labels,
                                                        tokenizer, scratch_out, ddp)
        if ddp.is_main:
            report.scratch = report_splits(scratch_model, splits, labels, device, dtype, cfg.batch_size,
                                           scratch_out, "from scratch", scratch_valid)
            print(format_comparison(report.splits, report.scratch))
        ddp.wait_for_all()
    if ddp.is_main:
        save_json(report.to_json(), out / "report.json")
        print(f"saved to {out}/: model.pt, config.json, tokenizer.model, labels.json, metrics.csv, report.json, "
              f"predictions.tsv" + (", loss.png" if (out / "loss.png").exists() else ""))
        print(f"next: classify new text: {command_for('predict')} --ckpt {out} --text \"your text here\"   "
              f"(or --text-file FILE, one text a line)")
    ddp.close()
    return report


def find_lr(cfg: FinetuneConfig) -> lr_finder.LRFinding:
    """--find-lr: the learning-rate range test (minilm/train/lr_finder.py) on the classifier as --ckpt and
    --freeze make it, with shuffled training batches; writes only out/lr_find.*."""
    refuse_torchrun("--find-lr")
    device = resolve_device(cfg.device)
    check_writable_dir(Path(cfg.out))
    _, tokenizer, splits, labels = prepare_data(cfg)
    train = splits["train"]
    model, trainer, loss_fn = prepare_training(cfg, cfg.init, train, len(labels), device,
                                               resolve_dtype(cfg.dtype, device), Distributed())
    context = model.cfg.context_length
    batches = ([batch] for batch in endless_batches(  # what training would read: one window per text, say
        lambda epoch: epoch_sequences(cfg, train, tokenizer, epoch, context), train.label_ids, cfg.batch_size,
        cfg.seed))
    return lr_finder.find_lr(trainer, batches, loss_fn, cfg.find_lr_steps, Path(cfg.out))


def predict(cfg: FinetuneConfig) -> dict:
    """--predict / --predict-file: classify new texts with the fine-tuned model in --out."""
    refuse_torchrun("--predict")
    return run_predict(cfg.out, cfg.predict, cfg.predict_file, cfg.max_length, resolve_device(cfg.device))


def parse_args(argv: list[str] | None = None) -> FinetuneConfig:
    return parse_config(FinetuneConfig, "finetune",
                        "Fine-tune a pretrained MiniLM as a text classifier; evaluate it; or classify new "
                        "text with --predict (the same as the predict command).", argv)


@exit_on_user_error
def cli(argv: list[str] | None = None) -> None:
    """The command line (train_finetune.py and the console script): classify with --predict or
    --predict-file, a range test with --find-lr, else fine-tune."""
    cfg = parse_args(argv)
    if cfg.predict or cfg.predict_file:
        predict(cfg)
    else:
        find_lr(cfg) if cfg.find_lr else run(cfg)
