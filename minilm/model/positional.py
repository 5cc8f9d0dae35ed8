"""Position encodings: how a Transformer learns *where* each token is.

Attention by itself is permutation-invariant: shuffle the tokens and every token gets the same
output (shuffled the same way). Word order has to be injected. Three classic ways:

- learned absolute (GPT-1/GPT-2): a trainable vector per position, added to the token embedding;
- fixed sinusoidal (Vaswani et al., 2017): a deterministic vector per position, added likewise;
- rotary, RoPE (Su et al., 2021): no vector is added; instead queries and keys are rotated by an
  angle proportional to their position, so the attention score q·k depends on the *offset* m - n.

Notation: T sequence length, C = d_model, hs = head size (C // n_head), positions (B, T) int64
(or (1, T) when every row has the same positions). The additive encodings return (B, T, C).
Rotary returns (cos, sin_signed), each (B, T, hs).
"""

from __future__ import annotations

import math

import torch
from torch import nn


class LearnedPositionalEmbedding(nn.Module):
    """p_t = W_pos[t]: one trainable C-vector per position, added to the token embedding.

    Cannot represent a position it never saw: positions must be < context_length.
    """

    def __init__(self, context_length: int, d_model: int):
        super().__init__()
        self.weight = nn.Embedding(context_length, d_model)

    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        return self.weight(positions)  # (B, T) -> (B, T, C)


class SinusoidalPositionalEncoding(nn.Module):
    """Fixed encoding, no parameters:

        PE[t, 2i]   = sin(t / 10000^(2i/C))
        PE[t, 2i+1] = cos(t / 10000^(2i/C))

    Each pair of dimensions is a clock ticking at its own frequency, from one turn every 2π
    positions (i = 0) to one turn every ~10000·2π positions (i = C/2 - 1). For any offset k,
    PE[t + k] is a fixed linear function (a rotation) of PE[t], which makes relative positions
    easy for attention to pick up.
    """

    def __init__(self, context_length: int, d_model: int, base: float = 10000.0):
        super().__init__()
        if d_model % 2:
            raise ValueError(f"sinusoidal positions need an even d_model, got {d_model}")
        t = torch.arange(context_length, dtype=torch.float32)[:, None]  # (T_max, 1)
        inv_freq = base ** (-torch.arange(0, d_model, 2, dtype=torch.float32) / d_model)  # (C/2,)
        table = torch.zeros(context_length, d_model)
        table[:, 0::2] = torch.sin(t * inv_freq)  # (T_max, C/2) into the even columns
        table[:, 1::2] = torch.cos(t * inv_freq)  # ... and the odd ones
        # A buffer, not a parameter: it moves with .to(device) but is never trained, and it is
        # not saved (persistent=False) because it is recomputed exactly from the formula.
        self.register_buffer("table", table, persistent=False)

    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        return self.table[positions]  # (B, T) -> (B, T, C)


class RotaryEmbedding(nn.Module):
    """RoPE: rotate each (x_j, x_{j+hs/2}) pair of a query or key by the angle t·θ_j.

        θ_j = base^(-2j/hs),  j = 0 .. hs/2 - 1
        rotate(x, t) = x · cos(tθ) + rotate_half(x) · sin(tθ),
        rotate_half([x1, x2]) = [-x2, x1]          (x1, x2 the two halves of the head)

    A rotation by angle a followed by the transpose of a rotation by angle b is a rotation by
    b - a, so  rotate(q, m) · rotate(k, n) = q · R((n - m)θ) k : the score depends only on the
    relative offset n - m, never on the absolute positions (tests/test_positional.py checks it).
    The pairs are (j, j + hs/2) rather than neighbours (2j, 2j+1); both are rotations, this one
    needs no strided indexing.
    """

    def __init__(self, head_size: int, context_length: int, base: float = 10000.0):
        super().__init__()
        if head_size % 2:
            raise ValueError(f"rotary positions need an even head size, got {head_size}")
        inv_freq = base ** (-torch.arange(0, head_size, 2, dtype=torch.float32) / head_size)  # (hs/2,)
        angles = torch.outer(torch.arange(context_length, dtype=torch.float32), inv_freq)  # (T_max, hs/2)
        self.register_buffer("cos", angles.cos().repeat(1, 2), persistent=False)  # (T_max, hs): a pair shares θ_j
        # sin with its first half negated, [-sin θ, sin θ]: what apply_rotary multiplies the rolled x by
        self.register_buffer("sin_signed", torch.cat([-angles.sin(), angles.sin()], dim=-1), persistent=False)

    def forward(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.cos[positions], self.sin_signed[positions]  # each (B, T, hs)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin_signed: torch.Tensor) -> torch.Tensor:
    """Rotate queries or keys x (..., B, nh, T, hs) by their positions' angles; cos and sin_signed
    are what RotaryEmbedding returns: (B, T, hs), or (T, hs) when every row has the same positions.

    rotate_half(x)·sin = [-x2·sin, x1·sin] = roll(x, hs/2)·[-sin, sin]: rolling the head by half
    its size swaps the halves in one op, where splitting, negating and concatenating take four
    (and as many again backward); the sign lives in the precomputed sin_signed.
    """
    if cos.dim() == 3:
        cos, sin_signed = cos[:, None], sin_signed[:, None]  # (B, 1, T, hs): the same angles for every head
    return x * cos + x.roll(x.size(-1) // 2, dims=-1) * sin_signed  # (..., B, nh, T, hs)


def sinusoidal_embedding_scale(d_model: int) -> float:
    """Token embeddings are multiplied by √C before the sinusoidal table is added (Vaswani et al.).

    The table's entries have magnitude ~0.7 while embeddings start at std 0.02; without the
    scale, position would drown out token identity at the start of training.
    """
    return math.sqrt(d_model)
