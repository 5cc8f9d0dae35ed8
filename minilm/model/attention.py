"""Multi-head causal self-attention, written out, with a KV cache for generation.

Notation (used in every shape comment below):
    B   batch size                         e.g. 8
    T   tokens in this call (queries)      e.g. 128
    Tk  tokens attended to (keys/values)   = T, or cached + T while generating
    C   d_model, the residual width        e.g. 128
    nh  number of heads                    e.g. 4
    hs  head size, C // nh                 e.g. 32

For each head, with Q = x W_q, K = x W_k, V = x W_v (each (T, hs)):

    Attention(Q, K, V) = softmax( Q Kᵀ / √hs + M ) V

M is 0 where query t may look at key s and -inf elsewhere: causality (s > t is the future) and
padding (s is a padding token). Why divide by √hs: if q and k have independent entries with
variance 1, q·k is a sum of hs such products and has variance hs; dividing by √hs brings it back
to 1, so the softmax starts out soft instead of picking one key and passing almost no gradient.

The heads run side by side: each sees a different hs-dimensional slice of the projected vectors,
their outputs are concatenated back to C and mixed by one output projection.

Two implementations share the parameters: "explicit" computes the formula line by line (read
this one); "fused" calls torch's scaled_dot_product_attention, which does the same maths in one
kernel (flash / memory-efficient attention on GPUs). tests/test_attention.py proves they agree.
`attention_weights(x)` returns the softmax matrix itself, for looking at (minilm/tools/attention_map.py).

No dropout on the attention weights. GPT-1 and GPT-2 also zeroed random entries of the softmax
matrix while training; here `ModelConfig.dropout` acts on the residual branches and embeddings
only. That mask needs a random number per (query, key) pair, head and layer, and on a CPU it
moves the fused kernel onto a slower path: it was the most expensive part of a fine-tuning step.
Without it, fine-tuning on IMDB took 14% more steps in the same 15 minutes and scored the same
within noise (docs/finetuning.md, "Dropout on the attention weights").
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from minilm.model.config import ModelConfig
from minilm.model.positional import apply_rotary


class KVCache:
    """Keys and values of the tokens seen so far, one slot per layer, preallocated.

    While generating, token t's keys and values never change (causal attention: nothing later
    can affect them), so each step feeds only the new token and reuses the stored K, V instead
    of recomputing the whole prefix. Cost per new token drops from O(T) forward passes' worth
    of work to O(1) projections plus one attention row. (Once the sequence outgrows the window,
    every position shifts and the cache must be rebuilt each step: see minilm/model/sampling.py.)
    """

    def __init__(self, n_layer: int, batch_size: int, n_head: int, max_len: int, head_size: int,
                 device: torch.device, dtype: torch.dtype):
        shape = (batch_size, n_head, max_len, head_size)
        self.keys = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(n_layer)]
        self.values = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(n_layer)]
        self.length = 0  # tokens stored so far (the same for every layer)
        self.max_len = max_len

    def append(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store k, v (B, nh, T, hs) after the cached ones; return all keys/values (B, nh, Tk, hs)."""
        start, end = self.length, self.length + k.size(2)
        if end > self.max_len:
            raise ValueError(f"KV cache holds {self.max_len} tokens; {end} requested")
        self.keys[layer][:, :, start:end] = k
        self.values[layer][:, :, start:end] = v
        return self.keys[layer][:, :, :end], self.values[layer][:, :, :end]

    def advance(self, n_tokens: int) -> None:
        """Called once per forward pass, after every layer has appended its n_tokens."""
        self.length += n_tokens


def attention_mask_for(T: int, Tk: int, padding_mask: torch.Tensor | None,
                       device: torch.device) -> torch.Tensor:
    """Boolean mask (B or 1, 1, T, Tk), True where a query may attend to a key.

    The T queries are the last T of the Tk keys (Tk - T of them are cached), so query i sits at
    absolute position Tk - T + i and may see keys 0 .. Tk - T + i.  padding_mask (B, Tk) has 1 for
    real tokens and 0 for padding; padded keys are hidden from every query, except that every
    query always sees itself. A padding query before the first real token (left padding) would
    otherwise see no key at all, and a softmax over nothing is 0/0 = NaN, which the next layer
    spreads to every position (0 · NaN = NaN). Seeing itself keeps it finite, and the same rule
    in both paths makes them agree for any mask; real queries never see a padding key either way.
    """
    query_pos = torch.arange(Tk - T, Tk, device=device)[:, None]  # (T, 1)
    key_pos = torch.arange(Tk, device=device)[None, :]  # (1, Tk)
    mask = (key_pos <= query_pos)[None, None]  # (1, 1, T, Tk): lower triangle, the causal rule
    if padding_mask is not None:
        itself = (key_pos == query_pos)[None, None]  # (1, 1, T, Tk): the diagonal
        mask = mask & (padding_mask.bool()[:, None, None, :] | itself)  # (B, 1, T, Tk)
    return mask


class CausalSelfAttention(nn.Module):
    """x (B, T, C) -> (B, T, C): every position mixes in the values of itself and earlier positions."""

    def __init__(self, cfg: ModelConfig, layer_index: int):
        super().__init__()
        self.layer_index = layer_index  # this block's slot in a KV cache
        self.n_head, self.head_size, self.impl = cfg.n_head, cfg.head_size, cfg.attn_impl
        self.qk_norm = cfg.qk_norm
        # W_q, W_k, W_v for all heads at once: one (C -> 3C) matmul instead of 3·nh small ones.
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=cfg.bias)
        self.out_proj = nn.Linear(cfg.d_model, cfg.d_model, bias=cfg.bias)
        self.out_proj.is_residual_projection = True  # gets the scaled init (see gpt.init_weights)

    def forward(self, x: torch.Tensor, rotary: tuple[torch.Tensor, torch.Tensor] | None = None,
                padding_mask: torch.Tensor | None = None, cache: KVCache | None = None,
                value_embedding: torch.Tensor | None = None) -> torch.Tensor:
        """rotary: (cos, sin_signed) of this call's positions, each (B or 1, T, hs), or None.
        padding_mask: (B, T) 1 = real, 0 = padding, or None (all real). Not combinable with cache.
        cache: the KV cache, when generating (this layer uses its own slot, self.layer_index).
        value_embedding: (B, T, C) vectors of the tokens themselves, added to the values, or None
        (see TransformerBody.value_embeddings).
        """
        B, T, C = x.shape
        q, k, v = self.heads(x, rotary)  # (B, nh, T, hs) each
        if value_embedding is not None:
            # V = x W_v + E_v[token]: split into heads like v, (B, T, C) -> (B, nh, T, hs)
            v = v + value_embedding.view(B, T, self.n_head, self.head_size).transpose(1, 2)
        if cache is not None:
            if padding_mask is not None:
                raise ValueError("padding_mask cannot be combined with a KV cache")
            k, v = cache.append(self.layer_index, k, v)  # (B, nh, Tk, hs), Tk = cached + T

        if self.impl == "explicit":
            y = self._explicit(q, k, v, padding_mask)
        else:
            y = self._fused(q, k, v, padding_mask)
        # Put the heads side by side again: (B, nh, T, hs) -> (B, T, nh, hs) -> (B, T, C)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.out_proj(y)  # (B, T, C): mixes what the heads found

    def heads(self, x: torch.Tensor, rotary: tuple[torch.Tensor, torch.Tensor] | None = None
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x (B, T, C) -> q, k, v, each (B, nh, T, hs), with rotary positions applied to q and k."""
        B, T, C = x.shape
        # One (C -> 3C) projection, viewed as (B, T, 3, nh, hs): q, k and v for every head. Heads
        # move next to batch (each head is independent); q and k stay stacked as (2, B, nh, T, hs)
        # so that QK-norm and the rotation below run once for both.
        qkv = self.qkv(x).view(B, T, 3, self.n_head, self.head_size).permute(2, 0, 3, 1, 4)  # (3, B, nh, T, hs)
        qk, v = qkv.split((2, 1))  # (2, B, nh, T, hs), (1, B, nh, T, hs): a split's backward is one cat
        v = v.squeeze(0)  # (B, nh, T, hs)
        if self.qk_norm:
            # QK-norm: q / RMS(q) and k / RMS(k) per head, so |q·k| / √hs <= √hs whatever the
            # weights do: no runaway logits, no softmax collapsed onto one key.
            qk = F.rms_norm(qk, (self.head_size,))
        if rotary is not None:
            qk = apply_rotary(qk, *rotary)  # positions enter here
        q, k = qk.unbind(0)  # (B, nh, T, hs) each
        return q, k, v

    def attention_weights(self, x: torch.Tensor, rotary: tuple[torch.Tensor, torch.Tensor] | None = None,
                          padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        """softmax(Q Kᵀ / √hs + M) for input x (B, T, C): (B, nh, T, T), row t = how much query t
        reads each key. What either path multiplies V by, for looking at."""
        q, k, _ = self.heads(x, rotary)
        return self._weights(q, k, padding_mask)

    def _weights(self, q: torch.Tensor, k: torch.Tensor, padding_mask: torch.Tensor | None) -> torch.Tensor:
        T, Tk = q.size(2), k.size(2)
        # (B, nh, T, hs) @ (B, nh, hs, Tk) -> (B, nh, T, Tk): one score per (query, key) pair
        scores = q @ k.transpose(-2, -1) / math.sqrt(self.head_size)
        allowed = attention_mask_for(T, Tk, padding_mask, q.device)  # (B|1, 1, T, Tk)
        scores = scores.masked_fill(~allowed, float("-inf"))  # + M: exp(-inf) = 0 weight
        return torch.softmax(scores, dim=-1)  # (B, nh, T, Tk): each row sums to 1

    def _explicit(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                  padding_mask: torch.Tensor | None) -> torch.Tensor:
        weights = self._weights(q, k, padding_mask)  # (B, nh, T, Tk)
        return weights @ v  # (B, nh, T, Tk) @ (B, nh, Tk, hs) -> (B, nh, T, hs)

    def _fused(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
               padding_mask: torch.Tensor | None) -> torch.Tensor:
        T, Tk = q.size(2), k.size(2)
        if padding_mask is None and T == Tk:
            # The plain causal case: let the kernel build the triangle itself (enables flash attention).
            return F.scaled_dot_product_attention(q, k, v, is_causal=True)
        if padding_mask is None and T == 1:
            # One new token with a cache: it may see every cached key, so no mask at all.
            return F.scaled_dot_product_attention(q, k, v)
        allowed = attention_mask_for(T, Tk, padding_mask, q.device)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
