"""GPT-2 = minilm with learned positions, LayerNorm and (exact) GELU.

    ours                                  GPT2LMHeadModel / GPT2ForSequenceClassification
    body.token_embedding.weight (V, C)    transformer.wte.weight (V, C)
    body.position.weight.weight (T, C)    transformer.wpe.weight (T, C)
    blocks.i.norm1 / norm2 (C,)           transformer.h.i.ln_1 / ln_2
    blocks.i.attn.qkv (3C, C)             h.i.attn.c_attn (C, 3C): Conv1D, transposed; q|k|v order as ours
    blocks.i.attn.out_proj (C, C)         h.i.attn.c_proj (C, C) transposed
    blocks.i.mlp.up (d_ff, C)             h.i.mlp.c_fc (C, d_ff) transposed
    blocks.i.mlp.down (C, d_ff)           h.i.mlp.c_proj (d_ff, C) transposed
    body.final_norm (C,)                  transformer.ln_f
GPT-2's default activation is "gelu_new", the tanh approximation: we write "gelu", the exact one
minilm uses. Every GPT-2 Linear and LayerNorm has a bias; a bias-free minilm model gets zeros.
"""

from __future__ import annotations

from minilm.interop.hf_weights import NORM_EPS, Architecture, require, same, transposed, weight_and_bias
from minilm.model.config import ModelConfig


def hf_config(cfg: ModelConfig) -> dict:
    return {"n_positions": cfg.context_length, "n_embd": cfg.d_model, "n_layer": cfg.n_layer,
            "n_head": cfg.n_head, "n_inner": cfg.d_ff, "activation_function": "gelu",
            "layer_norm_epsilon": NORM_EPS, "resid_pdrop": cfg.dropout, "embd_pdrop": cfg.dropout,
            "attn_pdrop": 0.0}  # minilm drops no attention weights (minilm/model/attention.py)


def model_config(hf, source: str) -> dict:
    require(source, "activation_function", hf.activation_function, "gelu")
    require(source, "layer_norm_epsilon", hf.layer_norm_epsilon, NORM_EPS)
    require(source, "scale_attn_by_inverse_layer_idx", hf.scale_attn_by_inverse_layer_idx, False)
    return {"context_length": hf.n_positions, "n_layer": hf.n_layer, "n_head": hf.n_head, "d_model": hf.n_embd,
            "d_ff": hf.n_inner or 4 * hf.n_embd, "pos_encoding": "learned", "norm": "layernorm",
            "activation": "gelu"}


def body_rules(cfg: ModelConfig) -> list:
    rules = [same("body.token_embedding.weight", "transformer.wte.weight"),
             same("body.position.weight.weight", "transformer.wpe.weight")]
    for i in range(cfg.n_layer):
        ours, theirs = f"body.blocks.{i}", f"transformer.h.{i}"
        rules += [*weight_and_bias(same, f"{ours}.norm1", f"{theirs}.ln_1"),
                  *weight_and_bias(transposed, f"{ours}.attn.qkv", f"{theirs}.attn.c_attn"),
                  *weight_and_bias(transposed, f"{ours}.attn.out_proj", f"{theirs}.attn.c_proj"),
                  *weight_and_bias(same, f"{ours}.norm2", f"{theirs}.ln_2"),
                  *weight_and_bias(transposed, f"{ours}.mlp.up", f"{theirs}.mlp.c_fc"),
                  *weight_and_bias(transposed, f"{ours}.mlp.down", f"{theirs}.mlp.c_proj")]
    return [*rules, *weight_and_bias(same, "body.final_norm", "transformer.ln_f")]


GPT2 = Architecture("GPT-2", "gpt2", "transformer.", hf_config, model_config, body_rules, bias_of=lambda hf: None)
