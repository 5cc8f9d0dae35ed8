"""Llama = minilm with RoPE, RMSNorm and SwiGLU.

    ours                                  LlamaForCausalLM / LlamaForSequenceClassification
    body.token_embedding.weight (V, C)    model.embed_tokens.weight (V, C)
    blocks.i.norm1 / norm2 (C,)           model.layers.i.input_layernorm / post_attention_layernorm
    blocks.i.attn.qkv (3C, C)             layers.i.self_attn.q_proj, k_proj, v_proj, each (C, C)
    blocks.i.attn.out_proj (C, C)         layers.i.self_attn.o_proj
    blocks.i.mlp.gate / up (d_ff, C)      layers.i.mlp.gate_proj / up_proj: silu(gate) * up, as ours
    blocks.i.mlp.down (C, d_ff)           layers.i.mlp.down_proj
    body.final_norm (C,)                  model.norm
Llama's rotary uses rotate_half like ours (HF permutes Meta's interleaved weights when converting
them, so its q_proj/k_proj are already in this layout). num_key_value_heads = num_attention_heads
(no grouped-query attention), rms_norm_eps 1e-5, and attention_bias = mlp_bias = minilm's bias.
"""

from __future__ import annotations

from minilm.interop.hf_weights import NORM_EPS, Architecture, require, rope_settings, same, split_qkv, weight_and_bias
from minilm.model.config import ModelConfig


def hf_config(cfg: ModelConfig) -> dict:
    return {"hidden_size": cfg.d_model, "num_hidden_layers": cfg.n_layer, "num_attention_heads": cfg.n_head,
            "num_key_value_heads": cfg.n_head, "intermediate_size": cfg.d_ff, "hidden_act": "silu",
            "max_position_embeddings": cfg.context_length, "rms_norm_eps": NORM_EPS, "rope_theta": cfg.rope_base,
            "attention_bias": cfg.bias, "mlp_bias": cfg.bias, "attention_dropout": 0.0}  # none in minilm either


def model_config(hf, source: str) -> dict:
    rope = rope_settings(hf)
    require(source, "num_key_value_heads", hf.num_key_value_heads, hf.num_attention_heads)
    require(source, "head_dim", hf.head_dim, hf.hidden_size // hf.num_attention_heads)
    require(source, "rope_type", rope.get("rope_type", "default"), "default")
    require(source, "hidden_act", hf.hidden_act, "silu")
    require(source, "rms_norm_eps", hf.rms_norm_eps, NORM_EPS)
    require(source, "mlp_bias", hf.mlp_bias, hf.attention_bias)
    return {"context_length": hf.max_position_embeddings, "n_layer": hf.num_hidden_layers,
            "n_head": hf.num_attention_heads, "d_model": hf.hidden_size, "d_ff": hf.intermediate_size,
            "pos_encoding": "rope", "norm": "rmsnorm", "activation": "swiglu", "rope_base": float(rope["rope_theta"])}


def body_rules(cfg: ModelConfig) -> list:
    rules = [same("body.token_embedding.weight", "model.embed_tokens.weight")]
    for i in range(cfg.n_layer):
        ours, theirs = f"body.blocks.{i}", f"model.layers.{i}"
        attn = f"{theirs}.self_attn"
        rules += [same(f"{ours}.norm1.weight", f"{theirs}.input_layernorm.weight"),
                  *[split_qkv(f"{ours}.attn.qkv.{p}", f"{attn}.q_proj.{p}", f"{attn}.k_proj.{p}", f"{attn}.v_proj.{p}")
                    for p in ("weight", "bias")],
                  *weight_and_bias(same, f"{ours}.attn.out_proj", f"{attn}.o_proj"),
                  same(f"{ours}.norm2.weight", f"{theirs}.post_attention_layernorm.weight"),
                  *weight_and_bias(same, f"{ours}.mlp.gate", f"{theirs}.mlp.gate_proj"),
                  *weight_and_bias(same, f"{ours}.mlp.up", f"{theirs}.mlp.up_proj"),
                  *weight_and_bias(same, f"{ours}.mlp.down", f"{theirs}.mlp.down_proj")]
    return [*rules, same("body.final_norm.weight", "model.norm.weight")]


LLAMA = Architecture("Llama", "llama", "model.", hf_config, model_config, body_rules,
                     bias_of=lambda hf: hf.attention_bias)
