"""What a fine-tuning run can do beyond training every weight at one rate: the learning rate per
layer (--head-lr, --layer-lr-decay), a linear probe first (--probe-steps, LP-FT), and the loss
with its options (the auxiliary LM loss, class weights, label smoothing).

docs/finetuning.md has the formulas and what each measured on IMDB.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from minilm.common.distributed import Distributed, split_batch
from minilm.common.progress import progress
from minilm.model.classifier import MiniLMForSequenceClassification, freeze_layers
from minilm.train.config import FinetuneConfig
from minilm.train.labeled_splits import Split, endless_batches
from minilm.train.trainer import OptimSettings, Trainer


def layer_lr_scales(cfg: FinetuneConfig, n_layer: int) -> dict[str, float] | None:
    """Learning-rate multipliers by parameter-name prefix (Trainer's lr_scale; the first match wins).

    --head-lr: the head's rate over --lr. --layer-lr-decay d (Howard & Ruder, 2018; ELECTRA): block
    i of n trains at d^(n-1-i) · lr, the embeddings at d^n · lr. Lower layers hold the general
    features pretraining found, which labeled data should change least; the top block and the
    final norm, closest to the task, train at the full rate.
    """
    scales = {"head.": cfg.head_lr / cfg.lr} if cfg.head_lr else {}
    if cfg.layer_lr_decay < 1.0:
        d = cfg.layer_lr_decay
        scales.update({f"body.blocks.{i}.": d ** (n_layer - 1 - i) for i in range(n_layer)})
        # each value-embedding table at its block's rate
        scales.update({f"body.value_embeddings.{i}.": d ** (n_layer - 1 - i) for i in range(n_layer)})
        scales.update({"body.token_embedding.": d ** n_layer, "body.position.": d ** n_layer})
    return scales or None


def make_loss_fn(cfg: FinetuneConfig, device: torch.device, class_weights: torch.Tensor | None,
                 ddp: Distributed) -> Callable:
    """The Trainer's loss_fn(model, batch): classification loss (+ the auxiliary LM loss) of this
    rank's rows of the batch, weighted by their share, so --batch-size stays the global batch."""
    def loss_fn(m, batch):
        rows, share = split_batch(batch, ddp)
        ids, mask, y = (t.to(device) for t in rows)
        return share * m(ids, mask, y, lm_loss_weight=cfg.lm_loss_weight, class_weights=class_weights,
                         label_smoothing=cfg.label_smoothing)[1]
    return loss_fn


def linear_probe(cfg: FinetuneConfig, model: MiniLMForSequenceClassification, train: Split, loss_fn: Callable,
                 device: torch.device, dtype: torch.dtype, ddp: Distributed) -> None:
    """LP-FT (Kumar et al., 2022), its first half: train the head alone on the frozen body for
    --probe-steps steps. A random head's large early gradients would otherwise flow into the
    pretrained body and distort its features before the head knows what to ask of them; a
    probed head starts the full fine-tuning already pointing the right way. Under torchrun every
    rank probes on whole batches alike (no gradient exchange: the body is frozen, the head small)
    and the fine-tuning's DistributedDataParallel then starts every rank from rank 0's head."""
    freeze_layers(model, "body")
    lr = cfg.head_lr or cfg.lr
    settings = OptimSettings(lr, 0.0, min(cfg.warmup_steps, cfg.probe_steps - 1), cfg.probe_steps, 0.0,
                             cfg.weight_decay, cfg.grad_clip)
    trainer = Trainer(model, settings, device, dtype)
    batches = endless_batches(lambda epoch: train.seqs, train.label_ids, cfg.batch_size, cfg.seed + 1)
    bar = progress(total=cfg.probe_steps, unit="step", desc="linear probe", enabled=ddp.is_main)
    while not trainer.done:
        loss = trainer.step([next(batches)], loss_fn)
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.3f}")
    bar.close()
