"""The fine-tuning model: the pretrained body plus a classification head (GPT-1, section 3.2).

    h = Body(x_1..x_T)                              (B, T, C)   the same body as MiniLM
    z = Pool(h, attention_mask)                     (B, C)      last real token, or masked mean
    P(y | x) = softmax(z W_y (+ b_y))               (B, num_labels)
    L_cls = -1/B Σ_b log P(y_b | x_b)

The head has no bias b_y by default: Hugging Face's *ForSequenceClassification heads have none,
so a model without it exports as is (minilm/interop/); head_bias=True keeps the older variant.

GPT-1 also keeps the language-model loss as an auxiliary objective while fine-tuning,
L = L_cls + λ · L_lm (λ = lm_loss_weight), which the paper found improves generalisation and
speeds up convergence. The LM head is kept for that (and so a fine-tuned model can still
generate); with tied weights it costs no parameters.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from minilm.model.config import ConfigError, ModelConfig
from minilm.model.gpt import MiniLM, TransformerBody, count_parameters, init_weights, make_lm_head

POOLINGS = ("last", "mean")


def pool_hidden(hidden: torch.Tensor, attention_mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """hidden (B, T, C), attention_mask (B, T) of 1/0 -> one vector per sequence (B, C).

    "last": the state of the last real token. In a causal model only that token has read the
    whole text, which is why GPT-1 classifies from it. Never hidden[:, -1]: on a right-padded
    batch that is a padding token.
    "mean": the average over real tokens (each position weighted once, padding weighted 0).
    """
    mask = attention_mask.to(hidden.dtype)  # (B, T)
    if pooling == "mean":
        summed = (hidden * mask[:, :, None]).sum(dim=1)  # (B, C)
        return summed / mask.sum(dim=1, keepdim=True).clamp(min=1.0)  # (B, C)
    positions = torch.arange(hidden.size(1), device=hidden.device)  # (T,)
    last = (positions * attention_mask.long()).argmax(dim=1)  # (B,): index of the last 1 in each row
    return hidden[torch.arange(hidden.size(0), device=hidden.device), last]  # (B, C)


def split_windows(input_ids: torch.Tensor, attention_mask: torch.Tensor, T: int, stride: int
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Texts longer than the context T -> windows of T tokens, `stride` apart, that the body can read.

    input_ids, attention_mask (B, L) with L > T -> window ids and mask (N, T), and owner (N,): the
    row each window came from. Windows start at 0, stride, 2·stride, ... A window is kept if it
    holds more than T - stride real tokens (it then reaches past the end of the window before it)
    or is its row's first window with any real token; the rest would only repeat what an earlier
    window read, or read padding. Each window counts its positions from its own start, as every
    pretraining chunk did.
    """
    B, L = input_ids.shape
    n_windows = -(-(L - T) // stride) + 1
    pad = T + (n_windows - 1) * stride - L  # so that the last window is whole
    ids = F.pad(input_ids, (0, pad), value=0).unfold(1, T, stride)  # (B, W, T)
    mask = F.pad(attention_mask, (0, pad), value=0).unfold(1, T, stride)  # (B, W, T)
    real = mask.sum(dim=-1)  # (B, W): real tokens per window
    first_with_text = (real > 0) & ((real > 0).long().cumsum(dim=1) == 1)  # (B, W)
    keep = (real > T - stride) | first_with_text  # (B, W)
    owner = torch.arange(B, device=input_ids.device)[:, None].expand(B, n_windows)[keep]  # (N,)
    return ids[keep], mask[keep], owner


def window_starts(length: int, T: int, stride: int) -> list[int]:
    """Where the windows split_windows keeps for a text of `length` tokens begin: 0, then every
    stride-th position whose window holds more than T - stride tokens of the text."""
    return [start for start in range(0, max(length, 1), stride) if start == 0 or length - start > T - stride]


def mean_per_text(window_logits: torch.Tensor, owner: torch.Tensor, n_texts: int) -> torch.Tensor:
    """(N, K) logits of windows -> (n_texts, K): each text's windows averaged (all weigh the same)."""
    totals = torch.zeros(n_texts, window_logits.size(1), device=window_logits.device, dtype=window_logits.dtype)
    totals = totals.index_add(0, owner, window_logits)  # (n_texts, K): sum over each text's windows
    counts = torch.bincount(owner, minlength=n_texts).clamp(min=1).to(window_logits.dtype)  # (n_texts,)
    return totals / counts[:, None]


class MiniLMForSequenceClassification(nn.Module):
    """forward(input_ids (B, T), attention_mask (B, T), labels (B,)) -> (logits (B, num_labels), loss)."""

    def __init__(self, cfg: ModelConfig, num_labels: int, pooling: str = "last",
                 classifier_dropout: float | None = None, head_bias: bool = False, window_stride: int = 0,
                 max_windows: int = 1):
        super().__init__()
        if num_labels < 2:
            raise ValueError(f"num_labels must be at least 2, got {num_labels}")
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}; got {pooling!r}")
        if not 0 <= window_stride <= cfg.context_length:
            raise ConfigError(f"window_stride must be in [1, context_length {cfg.context_length}] (0 = no windows), "
                              f"got {window_stride}")
        self.cfg, self.num_labels, self.pooling = cfg, num_labels, pooling
        if max_windows < 1:
            raise ConfigError(f"max_windows must be at least 1, got {max_windows}")
        # Texts longer than the context are read as windows this many tokens apart (0: they must fit),
        # at most max_windows of them: callers cut longer texts to max_input_tokens first.
        self.window_stride, self.max_windows = window_stride, max_windows if window_stride else 1
        self.body = TransformerBody(cfg)
        self.lm_head = make_lm_head(cfg, self.body)
        self.dropout = nn.Dropout(cfg.dropout if classifier_dropout is None else classifier_dropout)
        self.head = nn.Linear(cfg.d_model, num_labels, bias=head_bias)
        self.apply(lambda m: init_weights(m, cfg.n_layer, cfg.zero_init_residual))
        # Set by from_pretrained (minilm/interop/pretrained.py): what predict() needs besides weights.
        self.tokenizer = None  # a minilm.text.tokenizer.Tokenizer
        self.labels: list[str] | None = None  # class id -> label name

    @property
    def max_input_tokens(self) -> int:
        """The longest text (in tokens) the model reads whole: the context, or max_windows windows."""
        return self.cfg.context_length + (self.max_windows - 1) * self.window_stride

    @classmethod
    def from_pretrained_lm(cls, lm: MiniLM, num_labels: int, pooling: str = "last", dropout: float | None = None,
                           head_bias: bool = False, window_stride: int = 0,
                           max_windows: int = 1) -> MiniLMForSequenceClassification:
        """A classifier whose body (and LM head) are copies of a pretrained LM's; a fresh head.

        dropout overrides the body's dropout rate (pretraining often uses 0, fine-tuning on few
        labels wants ~0.1). The LM is not modified: its tensors are copied, not shared. To start
        from a checkpoint dir, load the LM first: `minilm.checkpoint.load_lm(dir, device)`.
        """
        state = lm.state_dict()
        cfg = ModelConfig.from_dict({**lm.cfg.to_dict(), **({} if dropout is None else {"dropout": dropout})})
        clf = cls(cfg, num_labels, pooling, head_bias=head_bias, window_stride=window_stride, max_windows=max_windows)
        body_state = {k.removeprefix("body."): v for k, v in state.items() if k.startswith("body.")}
        clf.body.load_state_dict(body_state)  # load_state_dict copies into clf's own tensors
        if not cfg.tie_weights:
            clf.lm_head.weight.data.copy_(state["lm_head.weight"])
        return clf

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None, lm_loss_weight: float = 0.0,
                class_weights: torch.Tensor | None = None, label_smoothing: float = 0.0
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """loss = cross-entropy on labels (+ lm_loss_weight · next-token loss on real tokens).

        class_weights (num_labels,): per-class loss weights, e.g. 1/frequency for imbalanced data.
        label_smoothing ε: the target is (1-ε)·one-hot + ε/K, so a confident logit stops paying off.
        input_ids longer than the context are read as windows (window_stride > 0): see split_windows.
        """
        n_texts = input_ids.size(0)
        owner = None  # (N,): which text each window belongs to, when the texts are read as windows
        if input_ids.size(1) > self.cfg.context_length and self.window_stride:
            if attention_mask is None:
                attention_mask = torch.ones_like(input_ids)
            input_ids, attention_mask, owner = split_windows(input_ids, attention_mask, self.cfg.context_length,
                                                             self.window_stride)  # (N, T), (N, T), (N,)
        hidden = self.body(input_ids, padding_mask=attention_mask)  # (N, T, C); N = B without windows
        if attention_mask is None:  # all real: after the body, which then needs no mask at all
            attention_mask = torch.ones_like(input_ids)
        pooled = pool_hidden(hidden, attention_mask, self.pooling)  # (N, C)
        logits = self.head(self.dropout(pooled))  # (N, num_labels)
        if owner is not None:
            logits = mean_per_text(logits, owner, n_texts)  # (B, num_labels)
        if labels is None:
            return logits, None
        loss = F.cross_entropy(logits.float(), labels, weight=class_weights, label_smoothing=label_smoothing)
        if lm_loss_weight:
            loss = loss + lm_loss_weight * self.lm_loss(hidden, input_ids, attention_mask)
        return logits, loss

    def lm_loss(self, hidden: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Next-token cross-entropy over real tokens: predict input_ids[:, t+1] from hidden[:, t]."""
        logits = self.lm_head(hidden[:, :-1])  # (B, T-1, V)
        targets = input_ids[:, 1:].masked_fill(attention_mask[:, 1:] == 0, -100)  # padding ignored
        return F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=-100)

    def num_parameters(self) -> int:
        return count_parameters(self)

    # -- checkpoint dirs and plain texts. The code is in minilm/interop/pretrained.py, imported when
    # called: the model layer itself imports torch only (tests/test_layout.py).

    @classmethod
    def from_pretrained(cls, path, labels: list[str] | None = None,
                        device: str | torch.device = "cpu") -> MiniLMForSequenceClassification:
        """A fine-tuned dir -> its classifier (eval mode, on device) with .tokenizer and .labels.
        A pretraining dir -> its body under a fresh head for `labels` (required then)."""
        from minilm.interop.pretrained import load_classifier_dir
        return load_classifier_dir(path, labels, device)

    def save_pretrained(self, path, overwrite: bool = False) -> None:
        """Write a fine-tuned checkpoint dir (config.json, model.pt, tokenizer.model, labels.json); a dir
        that already holds a checkpoint is refused unless overwrite=True."""
        from minilm.interop.pretrained import save_dir
        save_dir(self, path, overwrite)

    def predict(self, texts: list[str], batch_size: int = 64):
        """Texts -> Predictions(labels: list[str], probabilities: (N, num_labels) tensor), computed in
        right-padded batches on the model's device; texts longer than the context are truncated."""
        from minilm.interop.pretrained import predict
        return predict(self, texts, batch_size)


def freeze_layers(model: MiniLMForSequenceClassification, freeze: str) -> tuple[int, int]:
    """Choose what fine-tuning may change; returns (trainable, total) parameter counts.

    "none":       everything trains (GPT-1's choice).
    "embeddings": everything but the token (and learned position, and value) embeddings. A word the labels
                  never show keeps the vector pretraining gave it, and so does every word the
                  labels do show: both stay in the same space, so what the upper layers learn
                  about "great" still applies to "superb", which pretraining put next to it.
    "body":       only the head trains, on the pretrained features as they are (a linear probe).
    "N":          the head, the last N blocks (with their value embeddings) and the final norm train;
                  the rest stays frozen.
    Freezing protects what pretraining learned when labels are few, and trains faster.
    """
    n_blocks = len(model.body.blocks)
    trainable_blocks = {"none": n_blocks, "embeddings": n_blocks, "body": 0}.get(freeze)
    if trainable_blocks is None:
        trainable_blocks = int(freeze)
        if trainable_blocks > n_blocks:
            raise ConfigError(f"--freeze {freeze} asks to train more blocks than the model has ({n_blocks}); "
                              f"use a number up to {n_blocks}, or 'none'")
    for p in model.parameters():
        p.requires_grad = freeze in ("none", "embeddings")
    for p in model.head.parameters():
        p.requires_grad = True
    tables = model.body.value_embeddings or []  # block i's value-embedding table trains with block i
    for i in range(n_blocks - trainable_blocks, n_blocks):
        for p in [*model.body.blocks[i].parameters(), *(tables[i].parameters() if tables else [])]:
            p.requires_grad = True
    if trainable_blocks > 0:
        for p in model.body.final_norm.parameters():
            p.requires_grad = True
    if freeze == "embeddings":  # after the blocks' loop, which unfroze their value embeddings
        positions = model.body.position.parameters() if model.body.position is not None else []
        for p in [model.body.token_embedding.weight, *positions, *(t.weight for t in tables)]:
            p.requires_grad = False
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, count_parameters(model)
