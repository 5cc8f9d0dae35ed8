"""The language model: shapes, causality, tying, init, counting, config errors, learning."""

import math

import pytest
import torch
from conftest import ATTN_IMPLS, POS_ENCODINGS, cuda, tiny_config

from minilm import MiniLM, ModelConfig
from minilm.model.config import ConfigError


@pytest.mark.parametrize("pos", POS_ENCODINGS)
@pytest.mark.parametrize("impl", ATTN_IMPLS)
def test_shapes_for_every_encoding_and_attention(pos, impl):
    cfg = tiny_config(pos_encoding=pos, attn_impl=impl)
    lm = MiniLM(cfg)
    x = torch.randint(0, cfg.vocab_size, (3, 11))
    logits, loss = lm(x)
    assert logits.shape == (3, 11, cfg.vocab_size)
    assert loss is None
    logits2, loss = lm(x, targets=x)
    assert logits2.shape == (3, 11, cfg.vocab_size)  # same shape with or without targets
    assert loss.ndim == 0 and torch.isfinite(loss)


@pytest.mark.parametrize("pos", POS_ENCODINGS)
@pytest.mark.parametrize("impl", ATTN_IMPLS)
def test_future_tokens_do_not_change_past_logits(pos, impl):
    lm = MiniLM(tiny_config(pos_encoding=pos, attn_impl=impl)).eval()
    x = torch.randint(0, 97, (2, 16))
    t = 7
    changed = x.clone()
    changed[:, t + 1:] = torch.randint(0, 97, (2, 16 - t - 1))
    a, _ = lm(x)
    b, _ = lm(changed)
    torch.testing.assert_close(a[:, : t + 1], b[:, : t + 1], rtol=0, atol=1e-6)
    assert not torch.allclose(a[:, t + 1:], b[:, t + 1:])  # the later positions did see the change


def test_initial_loss_is_close_to_uniform():
    # A freshly initialised model knows nothing: loss ≈ ln(V), the entropy of a uniform guess.
    lm = MiniLM(tiny_config(vocab_size=500))
    x, y = torch.randint(0, 500, (2, 4, 16))
    _, loss = lm(x, targets=y)
    assert abs(loss.item() - math.log(500)) < 0.1


def test_ignore_index_positions_do_not_count():
    lm = MiniLM(tiny_config()).eval()
    x = torch.randint(0, 97, (2, 10))
    y = torch.randint(0, 97, (2, 10))
    masked = y.clone()
    masked[:, 5:] = -100
    _, loss_masked = lm(x, targets=masked)
    _, loss_prefix = lm(x[:, :5], targets=y[:, :5])  # causal: positions < 5 see the same inputs
    torch.testing.assert_close(loss_masked, loss_prefix)


def test_too_long_input_is_a_clear_error():
    lm = MiniLM(tiny_config())
    with pytest.raises(ValueError, match="sequence length 17 exceeds context_length 16"):
        lm(torch.zeros(1, 17, dtype=torch.long))


def test_tied_weights_share_storage_and_are_counted_once():
    tied = MiniLM(tiny_config(tie_weights=True))
    untied = MiniLM(tiny_config(tie_weights=False))
    assert tied.lm_head.weight.data_ptr() == tied.body.token_embedding.weight.data_ptr()
    assert untied.lm_head.weight.data_ptr() != untied.body.token_embedding.weight.data_ptr()
    assert untied.num_parameters() - tied.num_parameters() == 97 * 32
    # Hand count for the tied model: embeddings + blocks + final norm.
    C, F = 32, 4 * 32
    block = 2 * C + (3 * C * C + 3 * C) + (C * C + C) + 2 * C + (C * F + F) + (F * C + C)
    assert tied.num_parameters() == 97 * C + 2 * block + 2 * C + 0  # rope adds no parameters


def test_residual_projections_get_the_scaled_init():
    lm = MiniLM(tiny_config(d_model=256, n_head=4, n_layer=8, context_length=8))
    expected = 0.02 / math.sqrt(2 * 8)
    for block in lm.body.blocks:
        assert abs(block.attn.out_proj.weight.std().item() - expected) < 0.15 * expected
        assert abs(block.mlp.down.weight.std().item() - expected) < 0.15 * expected
        assert abs(block.attn.qkv.weight.std().item() - 0.02) < 0.15 * 0.02


@pytest.mark.parametrize("norm,activation,bias", [("rmsnorm", "swiglu", False), ("layernorm", "swiglu", True),
                                                  ("rmsnorm", "gelu", True)])
def test_variants_build_and_run(norm, activation, bias):
    cfg = tiny_config(norm=norm, activation=activation, bias=bias)
    lm = MiniLM(cfg)
    _, loss = lm(torch.randint(0, 97, (2, 8)), targets=torch.randint(0, 97, (2, 8)))
    loss.backward()
    assert all(p.grad is not None for p in lm.parameters())
    if activation == "swiglu":
        assert cfg.d_ff == 128  # 8/3 * 32 = 85.3, rounded up to a multiple of 64
    if not bias:
        assert not any(name.endswith(".bias") for name, _ in lm.named_parameters())


def test_flops_per_token_matches_the_formula():
    cfg = tiny_config()
    lm = MiniLM(cfg)
    n_linear = cfg.n_layer * (3 * 32 * 32 + 32 * 32 + 2 * 32 * 128) + 97 * 32  # blocks + output head
    assert lm.flops_per_token() == 6 * n_linear + 12 * cfg.n_layer * cfg.context_length * cfg.d_model


def test_a_tiny_model_overfits_one_batch():
    lm = MiniLM(tiny_config())
    x = torch.randint(0, 97, (4, 16))
    y = torch.roll(x, -1, dims=1)
    opt = torch.optim.AdamW(lm.parameters(), lr=3e-3)
    for _ in range(150):
        _, loss = lm(x, targets=y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.05


@pytest.mark.parametrize("bad,message", [
    (dict(d_model=30, n_head=4), r"d_model \(30\) must be divisible by n_head \(4\)"),
    (dict(pos_encoding="alibi"), "pos_encoding must be one of learned, sinusoidal, rope"),
    (dict(attn_impl="flash"), "attn_impl must be one of explicit, fused"),
    (dict(vocab_size=0), "vocab_size must be a positive integer"),
    (dict(dropout=1.5), r"dropout must be in \[0, 1\)"),
    (dict(d_model=12, n_head=4, pos_encoding="rope"), "rope needs an even head size"),
])
def test_config_errors_say_what_to_fix(bad, message):
    with pytest.raises(ConfigError, match=message):
        tiny_config(**bad)
    with pytest.raises(ValueError):  # also catchable as the standard exception type
        tiny_config(**bad)


def test_config_round_trips_and_refuses_unknown_keys():
    cfg = tiny_config(activation="swiglu")
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match="unknown model config keys"):
        ModelConfig.from_dict({**cfg.to_dict(), "n_layers": 3})


@cuda
def test_cuda_forward_matches_cpu():
    lm = MiniLM(tiny_config()).eval()
    x = torch.randint(0, 97, (2, 16))
    cpu_logits, _ = lm(x)
    gpu_logits, _ = lm.cuda()(x.cuda())
    torch.testing.assert_close(gpu_logits.cpu(), cpu_logits, rtol=1e-3, atol=1e-3)


@cuda
def test_cuda_bf16_autocast_trains():
    lm = MiniLM(tiny_config()).cuda()
    x = torch.randint(0, 97, (2, 16), device="cuda")
    with torch.autocast("cuda", dtype=torch.bfloat16):
        _, loss = lm(x, targets=x)
    loss.backward()
    assert torch.isfinite(loss)
