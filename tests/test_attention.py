"""Attention: the explicit path and the fused kernel compute the same thing; masks behave."""

import pytest
import torch
from conftest import POS_ENCODINGS, cuda, tiny_config

from minilm import MiniLM, ModelConfig
from minilm.model.attention import CausalSelfAttention, KVCache, attention_mask_for


def paired_attention(**overrides):
    explicit = CausalSelfAttention(tiny_config(attn_impl="explicit", **overrides), layer_index=0)
    fused = CausalSelfAttention(tiny_config(attn_impl="fused", **overrides), layer_index=0)
    fused.load_state_dict(explicit.state_dict())  # the two paths hold the same parameters
    return explicit.eval(), fused.eval()


def test_explicit_equals_fused_without_mask():
    explicit, fused = paired_attention()
    x = torch.randn(3, 12, 32)
    torch.testing.assert_close(explicit(x), fused(x), rtol=1e-5, atol=1e-5)


def test_explicit_equals_fused_with_padding_mask():
    explicit, fused = paired_attention()
    x = torch.randn(3, 12, 32)
    mask = torch.ones(3, 12, dtype=torch.long)
    mask[0, 7:] = 0
    mask[1, 3:] = 0
    a, b = explicit(x, padding_mask=mask), fused(x, padding_mask=mask)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("padded", [False, True])
def test_training_mode_drops_no_attention_weights(padded):
    # Dropout acts on the residual branches, never on the softmax matrix: with dropout on and the
    # modules in training mode, attention is still deterministic and both paths still agree.
    explicit, fused = paired_attention(dropout=0.5)
    explicit.train()
    fused.train()
    x = torch.randn(3, 12, 32)
    mask = torch.ones(3, 12, dtype=torch.long)
    mask[0, 5:] = 0
    mask = mask if padded else None
    torch.testing.assert_close(fused(x, padding_mask=mask), fused(x, padding_mask=mask), rtol=0, atol=0)
    torch.testing.assert_close(explicit(x, padding_mask=mask), fused(x, padding_mask=mask), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("pos", POS_ENCODINGS)
def test_whole_models_agree_across_attention_impls(pos):
    explicit = MiniLM(tiny_config(pos_encoding=pos, attn_impl="explicit")).eval()
    fused = MiniLM(tiny_config(pos_encoding=pos, attn_impl="fused")).eval()
    fused.load_state_dict(explicit.state_dict())
    x = torch.randint(0, 97, (2, 16))
    torch.testing.assert_close(explicit(x)[0], fused(x)[0], rtol=1e-5, atol=1e-5)


def test_padded_keys_are_invisible():
    # With a padding mask, what sits in padded positions cannot reach any real query, even when
    # padding comes first (left padding), where the causal rule alone would not hide it.
    explicit, fused = paired_attention()
    x = torch.randn(1, 8, 32)
    junk = x.clone()
    junk[:, :3] = torch.randn(1, 3, 32) * 10
    mask = torch.tensor([[0, 0, 0, 1, 1, 1, 1, 1]])
    for attn in (explicit, fused):
        torch.testing.assert_close(attn(x, padding_mask=mask)[:, 3:], attn(junk, padding_mask=mask)[:, 3:])


def test_mask_rule_with_cached_keys():
    # 2 new queries after 3 cached keys: query 0 is position 3 and sees keys 0..3.
    mask = attention_mask_for(T=2, Tk=5, padding_mask=None, device=torch.device("cpu"))
    assert mask.shape == (1, 1, 2, 5)
    assert mask[0, 0].tolist() == [[True, True, True, True, False], [True, True, True, True, True]]


def test_cache_append_returns_all_keys_so_far():
    cache = KVCache(n_layer=1, batch_size=1, n_head=1, max_len=4, head_size=2,
                    device=torch.device("cpu"), dtype=torch.float32)
    k1, v1 = torch.ones(1, 1, 3, 2), torch.ones(1, 1, 3, 2)
    cache.append(0, k1, v1)
    cache.advance(3)
    k, _ = cache.append(0, 2 * torch.ones(1, 1, 1, 2), torch.zeros(1, 1, 1, 2))
    assert k.shape == (1, 1, 4, 2) and k[0, 0, -1].tolist() == [2.0, 2.0]
    cache.advance(1)
    with pytest.raises(ValueError, match="holds 4 tokens"):
        cache.append(0, k1, v1)


@cuda
def test_explicit_equals_fused_on_cuda():
    explicit, fused = paired_attention()
    x = torch.randn(3, 12, 32, device="cuda")
    mask = torch.ones(3, 12, dtype=torch.long, device="cuda")
    mask[0, 5:] = 0
    explicit, fused = explicit.cuda(), fused.cuda()
    torch.testing.assert_close(explicit(x, padding_mask=mask), fused(x, padding_mask=mask), rtol=1e-4, atol=1e-4)


def left_and_right_padded(lengths: list[int], width: int) -> tuple[torch.Tensor, ...]:
    """The same texts padded on the right and on the left: ids and masks (B, width) of each."""
    right_ids = torch.zeros(len(lengths), width, dtype=torch.long)
    left_ids, right_mask, left_mask = right_ids.clone(), right_ids.clone(), right_ids.clone()
    for row, n in enumerate(lengths):
        text = torch.randint(4, 97, (n,))
        right_ids[row, :n], right_mask[row, :n] = text, 1
        left_ids[row, width - n:], left_mask[row, width - n:] = text, 1
    return right_ids, right_mask, left_ids, left_mask


@pytest.mark.parametrize("pos", POS_ENCODINGS)
def test_left_and_right_padding_give_the_same_logits_in_both_paths(pos):
    # Regression: a left-padded query saw no key, so the explicit path returned NaN (spread by
    # layer 2 to every position) while the fused one returned 0; and positions ignored padding.
    lengths, width = [9, 4, 12, 1], 12
    right_ids, right_mask, left_ids, left_mask = left_and_right_padded(lengths, width)
    hidden = {}
    for impl in ("explicit", "fused"):
        torch.manual_seed(0)
        body = MiniLM(tiny_config(pos_encoding=pos, attn_impl=impl, n_layer=3)).body.eval()
        hidden[impl, "right"] = body(right_ids, padding_mask=right_mask)
        hidden[impl, "left"] = body(left_ids, padding_mask=left_mask)
        assert torch.isfinite(hidden[impl, "left"]).all()
    for impl in ("explicit", "fused"):
        for row, n in enumerate(lengths):
            torch.testing.assert_close(hidden[impl, "left"][row, width - n:], hidden[impl, "right"][row, :n],
                                       rtol=1e-4, atol=1e-5)
    for side in ("left", "right"):
        torch.testing.assert_close(hidden["explicit", side], hidden["fused", side], rtol=1e-4, atol=1e-5)


def test_a_fully_masked_query_row_is_finite_in_both_paths():
    explicit, fused = paired_attention()
    x = torch.randn(2, 6, 32)
    mask = torch.tensor([[0, 0, 0, 1, 1, 1], [0, 0, 0, 0, 0, 1]])
    a, b = explicit(x, padding_mask=mask), fused(x, padding_mask=mask)
    assert torch.isfinite(a).all() and torch.isfinite(b).all()
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("impl", ["explicit", "fused"])
def test_attention_matches_torch_multihead_attention_with_the_same_weights(impl):
    """An independent reference: nn.MultiheadAttention packs W_q, W_k, W_v as one (3C, C) in_proj in
    the order q, k, v, exactly like our qkv; with a causal mask both must compute the same thing."""
    cfg = ModelConfig(vocab_size=50, context_length=16, n_layer=1, n_head=4, d_model=32, pos_encoding="learned",
                      attn_impl=impl)
    torch.manual_seed(0)
    ours = CausalSelfAttention(cfg, layer_index=0).eval()
    reference = torch.nn.MultiheadAttention(32, 4, bias=True, batch_first=True).eval()
    with torch.no_grad():
        for p in ours.parameters():
            p.normal_(0.0, 0.3)
        reference.in_proj_weight.copy_(ours.qkv.weight)
        reference.in_proj_bias.copy_(ours.qkv.bias)
        reference.out_proj.weight.copy_(ours.out_proj.weight)
        reference.out_proj.bias.copy_(ours.out_proj.bias)
        x = torch.randn(3, 16, 32)
        future = torch.triu(torch.ones(16, 16, dtype=torch.bool), diagonal=1)  # True = may not attend
        expected, _ = reference(x, x, x, attn_mask=future, need_weights=False)
        assert (ours(x) - expected).abs().max().item() < 1e-5
