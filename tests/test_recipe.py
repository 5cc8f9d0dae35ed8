"""The modern pretraining recipe, one defining property per technique: Muon's orthogonal update,
QK-norm, ReLU², the logit soft-cap, zero-initialised residual projections, warmup-stable-decay,
value embeddings."""

import pytest
import torch
import torch.nn.functional as F
from conftest import tiny_config
from jobs import TINY_MODEL, tiny_pretrain_config

from minilm import MiniLM, MiniLMForSequenceClassification
from minilm.common.errors import UserError
from minilm.tools.attention_map import attention_maps
from minilm.train import pretrain
from minilm.train.optim import MuonWithAdamW, build_optimizer, is_hidden_matrix, unique_trainable
from minilm.train.trainer import OptimSettings, lr_at

CPU = torch.device("cpu")


def test_muon_and_adamw_cover_every_parameter_exactly_once():
    lm = MiniLM(tiny_config(tie_weights=True))
    opt = build_optimizer(lm, "muon", 1e-3, 0.1, (0.9, 0.95), None, CPU)
    assert isinstance(opt, MuonWithAdamW)
    stepped = [id(p) for group in opt.param_groups for p in group["params"]]
    assert len(stepped) == len(set(stepped)) == len(unique_trainable(lm))
    muon_params = {id(p) for p in opt.muon.param_groups[0]["params"]}
    for name, p in unique_trainable(lm):
        # matrices inside the blocks go to Muon; the (tied) embedding, norms and biases to AdamW
        assert (id(p) in muon_params) == (p.dim() == 2 and ".blocks." in f".{name}"), name


def test_a_muon_update_is_orthogonal():
    """ΔW / (lr · 0.2·√max(m, n)) = the orthogonalised momentum: all singular values ≈ 1,
    whatever the spread of the gradient's singular values."""
    torch.manual_seed(0)
    layer = torch.nn.Linear(48, 32, bias=False)  # W: (32, 48)
    model = torch.nn.Module()
    model.blocks = torch.nn.ModuleList([layer])
    assert is_hidden_matrix("blocks.0.weight", layer.weight)
    opt = MuonWithAdamW(model, lr=1e-2, weight_decay=0.0, betas=(0.9, 0.95), lr_scale=None, fused=False)
    u, _ = torch.linalg.qr(torch.randn(32, 32))
    v, _ = torch.linalg.qr(torch.randn(48, 32))
    skewed = u @ torch.diag(torch.logspace(0, -1.5, 32)) @ v.T  # singular values from 1 down to 0.03
    layer.weight.grad = skewed.clone()
    before = layer.weight.detach().clone()
    opt.step()
    update = (before - layer.weight.detach()) / (1e-2 * 0.2 * 48 ** 0.5)
    singular = torch.linalg.svdvals(update)
    raw = torch.linalg.svdvals(skewed)
    assert raw.max() / raw.min() > 30  # the gradient itself is far from orthogonal
    assert singular.min() > 0.5 and singular.max() < 1.5, singular  # Newton–Schulz: all near 1


def test_muon_trains_and_resumes_its_state(tmp_path):
    out = tmp_path / "run"
    report = pretrain.run(tiny_pretrain_config(out, optimizer="muon", schedule="wsd", max_steps=8))
    assert report.best_val_loss < 5.0
    state = torch.load(out / "trainer_state.pt", weights_only=True)
    assert set(state["trainer"]["optimizer"]) == {"muon", "adamw"}


def test_a_model_with_value_embeddings_pretrains_resumes_and_classifies(tmp_path):
    out = tmp_path / "run"
    model = {**TINY_MODEL, "value_embeddings": True}
    pretrain.run(tiny_pretrain_config(out, model=model, max_steps=4))
    pretrain.run(tiny_pretrain_config(out, model=model, max_steps=8, resume=True))
    lm = MiniLM.from_pretrained(out)
    assert lm.cfg.value_embeddings and lm.body.value_embeddings[0].weight.any()  # trained away from 0
    clf = MiniLMForSequenceClassification.from_pretrained(out, labels=["negative", "positive"])
    assert clf.predict(["the soup was superb"]).labels[0] in ("negative", "positive")


def test_qk_norm_gives_unit_rms_queries_and_keys():
    lm = MiniLM(tiny_config(qk_norm=True, pos_encoding="learned"))
    attn = lm.body.blocks[0].attn
    q, k, _ = attn.heads(torch.randn(2, 8, 32) * 5)  # (B, nh, T, hs)
    for t in (q, k):
        torch.testing.assert_close(t.pow(2).mean(-1).sqrt(), torch.ones(2, 4, 8), atol=1e-3, rtol=1e-3)


def test_relu_squared_mlp_computes_its_formula():
    mlp = MiniLM(tiny_config(activation="relu2")).body.blocks[0].mlp
    x = torch.randn(3, 5, 32)
    expected = F.relu(x @ mlp.up.weight.T + mlp.up.bias).square() @ mlp.down.weight.T + mlp.down.bias
    torch.testing.assert_close(mlp(x), expected)
    assert mlp.up.out_features == 4 * 32  # same width (and FLOPs) as GELU's


def test_logit_softcap_bounds_the_logits_and_is_tanh_of_the_raw_ones():
    capped = MiniLM(tiny_config(logit_softcap=2.0))
    plain = MiniLM(tiny_config())
    plain.load_state_dict(capped.state_dict())  # same weights, no cap
    with torch.no_grad():
        capped.lm_head.weight.mul_(50)  # make raw logits large
        plain.lm_head.weight.mul_(50)
    x = torch.randint(0, 97, (2, 10))
    raw, _ = plain(x)
    logits, _ = capped(x)
    assert raw.abs().max() > 2.0 and logits.abs().max() <= 2.0
    torch.testing.assert_close(logits, 2.0 * torch.tanh(raw / 2.0))


def test_zero_initialised_residual_projections_make_every_block_the_identity():
    lm = MiniLM(tiny_config(zero_init_residual=True, pos_encoding="learned"))
    x = torch.randint(0, 97, (2, 10))
    h0, _ = lm.body.embed(x)
    torch.testing.assert_close(lm.body(x), lm.body.final_norm(h0))  # the blocks added nothing
    for block in lm.body.blocks:
        assert not block.attn.out_proj.weight.any() and not block.mlp.down.weight.any()
    _, loss = lm(x, targets=x)
    loss.backward()
    assert lm.body.blocks[0].mlp.down.weight.grad.abs().sum() > 0  # and they do learn


@pytest.mark.parametrize("decay_fraction", [0.2, 0.5])
def test_warmup_stable_decay_schedule(decay_fraction):
    s = OptimSettings(lr=1e-3, min_lr=1e-4, warmup_steps=10, max_steps=100, max_time=0.0, weight_decay=0.1,
                      grad_clip=1.0, schedule="wsd", decay_fraction=decay_fraction)
    assert lr_at(4, 0.05, s) == pytest.approx(5e-4)  # warmup: linear
    assert lr_at(30, 0.3, s) == pytest.approx(1e-3)  # stable at the peak
    assert lr_at(50, 1.0 - decay_fraction, s) == pytest.approx(1e-3)
    assert lr_at(99, 1.0, s) == pytest.approx(1e-4)  # decayed to min_lr at the end
    half = 1.0 - decay_fraction / 2
    assert lr_at(90, half, s) == pytest.approx(5.5e-4)  # straight line halfway down


def test_embedding_lr_scale_speeds_up_the_untied_embedding_only(tmp_path):
    cfg = tiny_pretrain_config(tmp_path / "run", embedding_lr_scale=10.0,
                               model={**TINY_MODEL, "tie_weights": False})
    lm = MiniLM(cfg.model_config(97))
    opt = build_optimizer(lm, "muon", 1e-3, 0.1, (0.9, 0.95), pretrain.embedding_lr_scale(cfg), CPU)
    scale_of = {id(p): group["lr_scale"] for group in opt.param_groups for p in group["params"]}
    assert scale_of[id(lm.body.token_embedding.weight)] == 10.0
    assert scale_of[id(lm.lm_head.weight)] == 1.0  # the untied output head keeps --lr
    assert sum(s == 10.0 for s in scale_of.values()) == 1


def test_value_embeddings_are_lookups_trained_by_adamw_at_the_embedding_lr(tmp_path):
    cfg = tiny_pretrain_config(tmp_path / "run", embedding_lr_scale=10.0,
                               model={**TINY_MODEL, "tie_weights": False, "value_embeddings": True})
    lm = MiniLM(cfg.model_config(97))
    opt = build_optimizer(lm, "muon", 1e-3, 0.1, (0.9, 0.95), pretrain.embedding_lr_scale(cfg), CPU)
    muon_params = {id(p) for p in opt.muon.param_groups[0]["params"]}
    scale_of = {id(p): group["lr_scale"] for group in opt.param_groups for p in group["params"]}
    tables = [table.weight for table in lm.body.value_embeddings]
    assert len(tables) == 2 and all(id(t) not in muon_params and scale_of[id(t)] == 10.0 for t in tables)


def test_value_embeddings_start_at_zero_and_add_the_tokens_vector_to_the_values():
    """Attention is linear in V, so adding E_v[token] to the values adds W_o · (A @ E_v[tokens])
    to the output, A the attention weights (which E_v does not touch)."""
    with_ve = MiniLM(tiny_config(value_embeddings=True))
    plain = MiniLM(tiny_config())
    plain.load_state_dict({k: v for k, v in with_ve.state_dict().items() if "value_embeddings" not in k})
    ids = torch.randint(0, 97, (2, 10))
    torch.testing.assert_close(with_ve(ids)[0], plain(ids)[0])  # zero tables: the plain model
    table = with_ve.body.value_embeddings[0]
    torch.nn.init.normal_(table.weight)
    attn = with_ve.body.blocks[0].attn
    x = torch.randn(2, 10, 32)
    rotary = with_ve.body.rotary(torch.arange(10)[None])
    added = attn(x, rotary, value_embedding=table(ids)) - attn(x, rotary)  # (B, T, C)
    weights = attn.attention_weights(x, rotary)  # (B, nh, T, T)
    e = table(ids).view(2, 10, 4, 8).transpose(1, 2)  # (B, nh, T, hs)
    mixed = (weights @ e).transpose(1, 2).reshape(2, 10, 32)
    torch.testing.assert_close(added, mixed @ attn.out_proj.weight.T, atol=1e-5, rtol=1e-4)
    assert not torch.allclose(with_ve(ids)[0], plain(ids)[0])  # and the model uses them


def test_value_embeddings_leave_every_other_initial_weight_as_the_seed_gives_it():
    """The tables start at 0 without a random draw, so an ablation arm with them starts from the
    same weights as the arm without."""
    torch.manual_seed(3)
    plain = MiniLM(tiny_config(tie_weights=False))
    torch.manual_seed(3)
    with_ve = MiniLM(tiny_config(tie_weights=False, value_embeddings=True))
    tables = {k for k in with_ve.state_dict() if "value_embeddings" in k}
    assert len(tables) == 2 and all(not with_ve.state_dict()[k].any() for k in tables)
    for key, value in plain.state_dict().items():
        assert torch.equal(value, with_ve.state_dict()[key]), key


def test_the_attention_map_tool_runs_the_blocks_with_their_value_embeddings():
    lm = MiniLM(tiny_config(value_embeddings=True)).eval()
    for table in lm.body.value_embeddings:
        torch.nn.init.normal_(table.weight)
    ids = torch.randint(0, 97, (1, 9))
    with torch.no_grad():
        x, rotary = lm.body.embed(ids)
        first_block_out = lm.body.blocks[0](x, rotary, value_embedding=lm.body.value_embedding(0, ids))
        expected = lm.body.blocks[1].attn.attention_weights(lm.body.blocks[1].norm1(first_block_out), rotary)[0]
    torch.testing.assert_close(attention_maps(lm, ids)[1], expected)  # layer 2 saw layer 1's real output


def test_generation_with_value_embeddings_is_the_same_with_and_without_the_kv_cache():
    lm = MiniLM(tiny_config(value_embeddings=True)).eval()
    for table in lm.body.value_embeddings:
        torch.nn.init.normal_(table.weight)
    prompt = torch.randint(0, 97, (2, 3))
    cached = lm.generate(prompt, 8, temperature=0.0, use_cache=True)
    assert torch.equal(cached, lm.generate(prompt, 8, temperature=0.0, use_cache=False))


def test_embedding_lr_scale_is_refused_for_a_tied_embedding(tmp_path):
    with pytest.raises(UserError, match="--tie-weights makes it the output head too: add --embedding-lr-scale 1"):
        tiny_pretrain_config(tmp_path / "run", embedding_lr_scale=10.0, model={**TINY_MODEL, "tie_weights": True})
    tiny_pretrain_config(tmp_path / "run", embedding_lr_scale=1.0, model={**TINY_MODEL, "tie_weights": True})
