"""The GPT: token embeddings -> N pre-norm Transformer blocks -> final norm -> next-token logits.

    h_0 = E[x] (+ P[positions] for additive position encodings)          (B, T, C)
    h_l = Block_l(h_{l-1})                 for l = 1..N                   (B, T, C)
    logits = Norm(h_N) W_outᵀ                                             (B, T, V)
    P(x_{t+1} = v | x_1..x_t) = softmax(logits[:, t])_v

and the pretraining objective is the mean next-token cross-entropy

    L = -1/(B·T) Σ_b Σ_t log P(x_{t+1} | x_1..x_t).

Notation as in attention.py: B batch, T time, C = d_model, V = vocab_size.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from minilm.model.attention import CausalSelfAttention, KVCache
from minilm.model.config import ModelConfig
from minilm.model.positional import (
    LearnedPositionalEmbedding,
    RotaryEmbedding,
    SinusoidalPositionalEncoding,
    sinusoidal_embedding_scale,
)
from minilm.model.sampling import stream_tokens


class RMSNorm(nn.Module):
    """RMSNorm(x) = x / sqrt(mean(x²) + eps) · g  — LayerNorm without the mean subtraction and bias."""

    def __init__(self, d_model: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d_model))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def make_norm(cfg: ModelConfig) -> nn.Module:
    if cfg.norm == "rmsnorm":
        return RMSNorm(cfg.d_model)
    return nn.LayerNorm(cfg.d_model, bias=cfg.bias)


def dropout_layer(p: float) -> nn.Module:
    """Dropout with probability p; with p = 0 (pretraining) nothing at all, not a module call that
    returns its input: a small model's step is many small ops, and each call costs time."""
    return nn.Dropout(p) if p > 0 else nn.Identity()


class MLP(nn.Module):
    """The position-wise feed-forward network, applied to every token independently.

    gelu:    MLP(x) = GELU(x W_1) W_2                        W_1: C -> d_ff, W_2: d_ff -> C
    swiglu:  MLP(x) = (SiLU(x W_gate) ⊙ (x W_up)) W_2        a learned gate on each hidden unit
    relu2:   MLP(x) = ReLU(x W_1)² W_2                       sparse like ReLU, smooth near 0
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.activation = cfg.activation
        self.gated = cfg.activation == "swiglu"
        self.up = nn.Linear(cfg.d_model, cfg.d_ff, bias=cfg.bias)
        self.gate = nn.Linear(cfg.d_model, cfg.d_ff, bias=cfg.bias) if self.gated else None
        self.down = nn.Linear(cfg.d_ff, cfg.d_model, bias=cfg.bias)
        self.down.is_residual_projection = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.gated:
            hidden = F.silu(self.gate(x)) * self.up(x)  # (B, T, d_ff)
        elif self.activation == "relu2":
            hidden = F.relu(self.up(x)).square()  # (B, T, d_ff)
        else:
            hidden = F.gelu(self.up(x))  # (B, T, d_ff)
        return self.down(hidden)  # (B, T, C)


class Block(nn.Module):
    """One Transformer block, pre-norm:

        x = x + Attention(Norm_1(x))     tokens exchange information
        x = x + MLP(Norm_2(x))           each token thinks on its own

    Pre-norm (GPT-2) rather than post-norm (original Transformer): the residual path from input
    to output is a clean sum with no normalisation on it, so gradients reach early layers
    undamped and training is stable without a long warmup.
    """

    def __init__(self, cfg: ModelConfig, layer_index: int):
        super().__init__()
        self.norm1 = make_norm(cfg)
        self.attn = CausalSelfAttention(cfg, layer_index)
        self.norm2 = make_norm(cfg)
        self.mlp = MLP(cfg)
        self.resid_dropout = dropout_layer(cfg.dropout)

    def forward(self, x: torch.Tensor, rotary: tuple[torch.Tensor, torch.Tensor] | None = None,
                padding_mask: torch.Tensor | None = None, cache: KVCache | None = None,
                value_embedding: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.resid_dropout(self.attn(self.norm1(x), rotary, padding_mask, cache, value_embedding))
        x = x + self.resid_dropout(self.mlp(self.norm2(x)))
        return x


class TransformerBody(nn.Module):
    """Everything but the output head: embeddings, positions, blocks, final norm.

    The language model and the classifier share this body; fine-tuning copies it across.
    input_ids (B, T) -> hidden states (B, T, C).
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.token_embedding = nn.Embedding(cfg.vocab_size, cfg.d_model)
        # Positions enter in one of two places: an additive table (T, C) added to the embeddings
        # once, at the bottom (learned, sinusoidal), or a rotation of q and k inside every
        # attention layer (rope). Exactly one of the two attributes is set.
        self.position: nn.Module | None = None
        self.rotary: RotaryEmbedding | None = None
        if cfg.pos_encoding == "learned":
            self.position = LearnedPositionalEmbedding(cfg.context_length, cfg.d_model)
        elif cfg.pos_encoding == "sinusoidal":
            self.position = SinusoidalPositionalEncoding(cfg.context_length, cfg.d_model, cfg.rope_base)
        else:
            self.rotary = RotaryEmbedding(cfg.head_size, cfg.context_length, cfg.rope_base)
        self.embed_scale = sinusoidal_embedding_scale(cfg.d_model) if cfg.pos_encoding == "sinusoidal" else 1.0
        self.embed_dropout = dropout_layer(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg, i) for i in range(cfg.n_layer))
        self.final_norm = make_norm(cfg)
        # Value embeddings (cfg.value_embeddings): table l (V, C) holds, for every token, a vector
        # that block l adds to that token's attention values. The token's identity then reaches
        # every layer directly, where otherwise it would have to survive in the residual stream
        # among everything the blocks below wrote into it. They start at 0, so the model starts as
        # the plain one, and are built from zeros without drawing a random number: the same seed
        # gives every other weight the same start with or without them. Lookups, like the token
        # embedding: no FLOPs; AdamW, not Muon, trains them (they live outside .blocks., see
        # optim.is_hidden_matrix: a table of rows is no linear map to orthogonalise).
        self.value_embeddings = None
        if cfg.value_embeddings:
            self.value_embeddings = nn.ModuleList(
                nn.Embedding(cfg.vocab_size, cfg.d_model, _weight=torch.zeros(cfg.vocab_size, cfg.d_model))
                for _ in range(cfg.n_layer))
            for table in self.value_embeddings:
                table.starts_at_zero = True

    def embed(self, input_ids: torch.Tensor, start: int = 0, padding_mask: torch.Tensor | None = None
              ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor] | None]:
        """input_ids (B, T) at positions start.. -> the blocks' input h_0 (B, T, C), and the rotary
        (cos, sin_signed) each (B|1, T, hs) the attention layers need (None for additive positions).
        With a padding_mask, positions count real tokens only (see token_positions)."""
        T = input_ids.size(1)
        if start + T > self.cfg.context_length:
            raise ValueError(
                f"sequence length {start + T} exceeds context_length {self.cfg.context_length}; "
                f"crop the input to the last {self.cfg.context_length} tokens"
            )
        positions = token_positions(T, start, padding_mask, input_ids.device)  # (B|1, T)
        x = self.token_embedding(input_ids)  # (B, T, C)
        if self.embed_scale != 1.0:  # sinusoidal only: a ×1.0 would cost an op forward and backward
            x = x * self.embed_scale
        rotary = None
        if self.rotary is not None:
            rotary = self.rotary(positions)  # (cos, sin_signed), each (B|1, T, hs): used inside attention
        else:
            x = x + self.position(positions)  # (B, T, C) + (B|1, T, C): added once, at the bottom
        return self.embed_dropout(x), rotary

    def forward(self, input_ids: torch.Tensor, padding_mask: torch.Tensor | None = None,
                cache: KVCache | None = None) -> torch.Tensor:
        T = input_ids.size(1)
        start = cache.length if cache is not None else 0  # cached tokens come first
        x, rotary = self.embed(input_ids, start, padding_mask)  # (B, T, C)
        for i, block in enumerate(self.blocks):
            x = block(x, rotary, padding_mask, cache, self.value_embedding(i, input_ids))  # (B, T, C)
        if cache is not None:
            cache.advance(T)
        return self.final_norm(x)  # (B, T, C)

    def value_embedding(self, layer: int, input_ids: torch.Tensor) -> torch.Tensor | None:
        """Block `layer`'s value embeddings of input_ids (B, T) -> (B, T, C); None without them."""
        return self.value_embeddings[layer](input_ids) if self.value_embeddings is not None else None


def token_positions(T: int, start: int, padding_mask: torch.Tensor | None, device: torch.device) -> torch.Tensor:
    """The position of each token: start, start+1, ... (1, T); with a padding_mask (B, T), the
    number of real tokens before it (B, T), so a text has the same positions whether it is padded
    on the left or on the right, and gets the same logits either way. A padding token gets the
    position the next real token would have; no real token ever reads it."""
    if padding_mask is None:
        return torch.arange(start, start + T, device=device)[None]  # (1, T)
    real = padding_mask.long()  # (B, T), 1 = real token
    return (real.cumsum(dim=1) - real).clamp(min=0) + start  # (B, T): real tokens so far, before this one


def init_weights(module: nn.Module, n_layer: int, zero_residual: bool = False) -> None:
    """GPT-2 initialisation, applied to every submodule.

    Linear and embedding weights ~ N(0, 0.02²), biases 0. Projections that write into the
    residual stream (marked is_residual_projection) get std 0.02/√(2·n_layer): the stream is a
    sum of 2·n_layer such branches, so this keeps its variance roughly independent of depth.
    With zero_residual they start at exactly 0: every block is then the identity at step 0 and
    the network grows its depth from a working shallow model (their own gradients are not 0).
    Value embeddings (marked starts_at_zero) start at 0 too: the model starts without them.
    """
    if isinstance(module, nn.Linear):
        residual = getattr(module, "is_residual_projection", False)
        std = 0.02 / math.sqrt(2 * n_layer) if residual else 0.02
        nn.init.normal_(module.weight, mean=0.0, std=std)
        if residual and zero_residual:
            nn.init.zeros_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        if getattr(module, "starts_at_zero", False):
            nn.init.zeros_(module.weight)  # no random draw: the weights initialised after it stay the same
        else:
            nn.init.normal_(module.weight, mean=0.0, std=0.02)


def count_parameters(model: nn.Module) -> int:
    """Trainable-or-not parameters, each tensor once (tied weights are one tensor, counted once)."""
    return sum(p.numel() for p in model.parameters())


class LMHead(nn.Linear):
    """hidden (..., C) -> logits (..., V), optionally soft-capped: z -> c·tanh(z / c).

    The cap is smooth (gradients never vanish abruptly) and almost the identity for |z| << c; it
    only stops a logit from running off to ±∞, which early in training makes the loss spiky.
    """

    def __init__(self, d_model: int, vocab_size: int, softcap: float):
        super().__init__(d_model, vocab_size, bias=False)
        self.softcap = softcap

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        logits = super().forward(hidden)
        if self.softcap:
            logits = self.softcap * torch.tanh(logits / self.softcap)
        return logits


def make_lm_head(cfg: ModelConfig, body: TransformerBody) -> LMHead:
    """C -> V projection; with tie_weights it *is* the token embedding matrix (same storage)."""
    head = LMHead(cfg.d_model, cfg.vocab_size, cfg.logit_softcap)
    if cfg.tie_weights:
        # An embedding row says "what this token means"; the output row says "what predicts this
        # token". Sharing them (Press & Wolf, 2017) saves V·C parameters and helps small models.
        head.weight = body.token_embedding.weight
    return head


class MiniLM(nn.Module):
    """The causal language model. forward(input_ids (B, T), targets (B, T)) -> (logits (B, T, V), loss)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.body = TransformerBody(cfg)
        self.lm_head = make_lm_head(cfg, self.body)
        self.apply(lambda m: init_weights(m, cfg.n_layer, cfg.zero_init_residual))
        self.tokenizer = None  # set by from_pretrained: a minilm.text.tokenizer.Tokenizer

    def forward(self, input_ids: torch.Tensor, targets: torch.Tensor | None = None,
                cache: KVCache | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """targets are already shifted: targets[:, t] is the token after input_ids[:, t].

        Positions whose target is -100 (PyTorch's ignore_index) are left out of the mean, e.g.
        padding. loss is None when targets is None; logits are (B, T, V) either way.
        """
        hidden = self.body(input_ids, cache=cache)  # (B, T, C)
        logits = self.lm_head(hidden)  # (B, T, C) @ (C, V) -> (B, T, V)
        loss = None
        if targets is not None:
            # cross_entropy wants (N, V) scores and (N,) classes: flatten batch and time.
            loss = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=-100)
        return logits, loss

    @torch.no_grad()
    def generate(self, input_ids: torch.Tensor, max_new_tokens: int, temperature: float = 1.0,
                 top_k: int | None = None, top_p: float | None = None, use_cache: bool = True,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """Prompt (B, T0) -> prompt + max_new_tokens sampled tokens (B, T0 + max_new_tokens).

        temperature 0 is greedy decoding. See minilm/model/sampling.py for how each step works.
        """
        new = list(stream_tokens(self, input_ids, max_new_tokens, temperature, top_k, top_p,
                                 use_cache, generator))
        return torch.cat([input_ids, *new], dim=1) if new else input_ids.clone()

    def num_parameters(self) -> int:
        return count_parameters(self)

    # -- checkpoint dirs. The code is in minilm/interop/pretrained.py, imported when called: the
    # model layer itself imports torch only and never touches a file (tests/test_layout.py).

    @classmethod
    def from_pretrained(cls, path, device: str | torch.device = "cpu") -> MiniLM:
        """A pretraining or fine-tuning dir -> its language model (eval mode, on device), .tokenizer set."""
        from minilm.interop.pretrained import load_lm_dir
        return load_lm_dir(path, device)

    def save_pretrained(self, path, overwrite: bool = False) -> None:
        """Write a pretraining checkpoint dir (config.json, model.pt, tokenizer.model); a dir that already
        holds a checkpoint is refused unless overwrite=True."""
        from minilm.interop.pretrained import save_dir
        save_dir(self, path, overwrite)

    def flops_per_token(self, seq_len: int | None = None) -> float:
        """Training FLOPs per token (forward + backward ≈ 3 × forward), Kaplan et al. / PaLM style.

        Every weight in a matmul does a multiply and an add per token (2 FLOPs) forward, and
        twice that backward: 6 · N_matmul. Attention adds the scores and the weighted sum of
        values, 2 · 2 · T · C per token per layer forward, so 12 · n_layer · T · C in total.
        N_matmul counts Linear weights including the output head (a real V×C matmul even when
        its matrix is shared with the embedding lookup, which itself costs no FLOPs).
        """
        T = seq_len or self.cfg.context_length
        n_matmul = sum(m.weight.numel() for m in self.modules() if isinstance(m, nn.Linear))
        return 6 * n_matmul + 12 * self.cfg.n_layer * T * self.cfg.d_model
