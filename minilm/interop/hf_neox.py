"""GPT-NeoX = minilm with RoPE, LayerNorm and GELU (minilm's default), run sequentially.

    ours                                  GPTNeoXForCausalLM / GPTNeoXForSequenceClassification
    body.token_embedding.weight (V, C)    gpt_neox.embed_in.weight (V, C)
    blocks.i.norm1 / norm2 (C,)           gpt_neox.layers.i.input_layernorm / post_attention_layernorm
    blocks.i.attn.qkv (3C, C)             layers.i.attention.query_key_value (3C, C), rows regrouped
                                          from (3, nh, hs) to (nh, 3, hs): see interleaved_qkv
    blocks.i.attn.out_proj (C, C)         layers.i.attention.dense (C, C)
    blocks.i.mlp.up / down                layers.i.mlp.dense_h_to_4h / dense_4h_to_h
    body.final_norm (C,)                  gpt_neox.final_layer_norm
Settings that make it minilm's function: use_parallel_residual=False (x + attn, then + mlp, as in
our Block), rotary_pct=1.0 (every head dimension rotates), hidden_act "gelu" (exact). Its rotary
pairs dimension j with j + hs/2 (rotate_half), as ours does, so q and k need no permutation.
The MLP and the LayerNorms always have biases (zeros for a bias-free model); attention_bias
follows minilm's bias flag.
"""

from __future__ import annotations

from minilm.interop.hf_weights import (
    NORM_EPS,
    Architecture,
    interleaved_qkv,
    require,
    rope_settings,
    same,
    weight_and_bias,
)
from minilm.model.config import ModelConfig


def hf_config(cfg: ModelConfig) -> dict:
    return {"hidden_size": cfg.d_model, "num_hidden_layers": cfg.n_layer, "num_attention_heads": cfg.n_head,
            "intermediate_size": cfg.d_ff, "hidden_act": "gelu", "max_position_embeddings": cfg.context_length,
            "layer_norm_eps": NORM_EPS, "use_parallel_residual": False, "rotary_pct": 1.0,
            "rotary_emb_base": cfg.rope_base, "attention_bias": cfg.bias, "attention_dropout": 0.0,
            "hidden_dropout": cfg.dropout}


def model_config(hf, source: str) -> dict:
    rope = rope_settings(hf)
    require(source, "use_parallel_residual", hf.use_parallel_residual, False)
    require(source, "rotary_pct (partial_rotary_factor)", rope.get("partial_rotary_factor", 1.0), 1.0)
    require(source, "rope_type", rope.get("rope_type", "default"), "default")
    require(source, "hidden_act", hf.hidden_act, "gelu")
    require(source, "layer_norm_eps", hf.layer_norm_eps, NORM_EPS)
    return {"context_length": hf.max_position_embeddings, "n_layer": hf.num_hidden_layers,
            "n_head": hf.num_attention_heads, "d_model": hf.hidden_size, "d_ff": hf.intermediate_size,
            "pos_encoding": "rope", "norm": "layernorm", "activation": "gelu", "rope_base": float(rope["rope_theta"])}


def body_rules(cfg: ModelConfig) -> list:
    rules = [same("body.token_embedding.weight", "gpt_neox.embed_in.weight")]
    for i in range(cfg.n_layer):
        ours, theirs = f"body.blocks.{i}", f"gpt_neox.layers.{i}"
        rules += [*weight_and_bias(same, f"{ours}.norm1", f"{theirs}.input_layernorm"),
                  *weight_and_bias(interleaved_qkv, f"{ours}.attn.qkv", f"{theirs}.attention.query_key_value",
                                   cfg.n_head),
                  *weight_and_bias(same, f"{ours}.attn.out_proj", f"{theirs}.attention.dense"),
                  *weight_and_bias(same, f"{ours}.norm2", f"{theirs}.post_attention_layernorm"),
                  *weight_and_bias(same, f"{ours}.mlp.up", f"{theirs}.mlp.dense_h_to_4h"),
                  *weight_and_bias(same, f"{ours}.mlp.down", f"{theirs}.mlp.dense_4h_to_h")]
    return [*rules, *weight_and_bias(same, "body.final_norm", "gpt_neox.final_layer_norm")]


GPT_NEOX = Architecture("GPT-NeoX", "gpt_neox", "gpt_neox.", hf_config, model_config, body_rules,
                        bias_of=lambda hf: hf.attention_bias)
