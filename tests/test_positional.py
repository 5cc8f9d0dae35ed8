"""Position encodings: the formulas, and RoPE's relative-position property."""

import math

import torch

from minilm.model.positional import (
    LearnedPositionalEmbedding,
    RotaryEmbedding,
    SinusoidalPositionalEncoding,
    apply_rotary,
)


def test_sinusoidal_matches_the_formula():
    pe = SinusoidalPositionalEncoding(context_length=50, d_model=8)
    t, i = 13, 2  # dimension pair i = 2 -> columns 4 and 5
    angle = t / 10000 ** (2 * i / 8)
    assert math.isclose(pe.table[t, 2 * i].item(), math.sin(angle), abs_tol=1e-6)
    assert math.isclose(pe.table[t, 2 * i + 1].item(), math.cos(angle), abs_tol=1e-6)
    assert pe(torch.tensor([0, 13])).shape == (2, 8)
    assert len(list(pe.parameters())) == 0 and "table" not in pe.state_dict()


def test_learned_positions_are_parameters():
    pe = LearnedPositionalEmbedding(context_length=10, d_model=4)
    assert pe(torch.arange(10)).shape == (10, 4)
    assert sum(p.numel() for p in pe.parameters()) == 40


def test_rope_score_depends_only_on_relative_offset():
    rope = RotaryEmbedding(head_size=16, context_length=64)
    q = torch.randn(1, 1, 1, 16)
    k = torch.randn(1, 1, 1, 16)

    def score(m: int, n: int) -> float:
        cos_m, sin_m = rope(torch.tensor([m]))
        cos_n, sin_n = rope(torch.tensor([n]))
        return (apply_rotary(q, cos_m, sin_m) * apply_rotary(k, cos_n, sin_n)).sum().item()

    for offset in (0, 1, 5, 17):
        reference = score(0, offset)
        for start in (3, 20, 40):
            assert math.isclose(score(start, start + offset), reference, rel_tol=1e-4, abs_tol=1e-4)
    assert not math.isclose(score(0, 1), score(0, 5), abs_tol=1e-3)  # different offsets differ


def test_rope_preserves_vector_length():
    rope = RotaryEmbedding(head_size=8, context_length=32)
    x = torch.randn(2, 3, 32, 8)
    rotated = apply_rotary(x, *rope(torch.arange(32)))
    torch.testing.assert_close(rotated.norm(dim=-1), x.norm(dim=-1))
    torch.testing.assert_close(rotated[:, :, 0], x[:, :, 0])  # position 0: rotation by angle 0
