"""Which standard transformers architecture computes exactly a given minilm model's function.

    learned positions + LayerNorm + GELU    -> GPT-2
    RoPE + LayerNorm + GELU (the default)   -> GPT-NeoX
    RoPE + RMSNorm + SwiGLU                 -> Llama
Anything else has no class in transformers that computes the same numbers, so the export refuses
with one line naming the flags that would make the model exportable. So do classifiers that pool
by the mean (HF's *ForSequenceClassification read the last non-padding token) or whose head has a
bias (HF's score layer has none).
"""

from __future__ import annotations

from minilm.common.errors import UserError
from minilm.interop.hf_gpt2 import GPT2
from minilm.interop.hf_llama import LLAMA
from minilm.interop.hf_neox import GPT_NEOX
from minilm.interop.hf_weights import Architecture
from minilm.model.config import ModelConfig

BY_SHAPE = {("learned", "layernorm", "gelu"): GPT2,
            ("rope", "layernorm", "gelu"): GPT_NEOX,
            ("rope", "rmsnorm", "swiglu"): LLAMA}
BY_MODEL_TYPE = {arch.model_type: arch for arch in BY_SHAPE.values()}
EXPORTABLE = ("--pos-encoding learned --norm layernorm --activation gelu (GPT-2), --pos-encoding rope "
              "--norm layernorm --activation gelu (GPT-NeoX) or --pos-encoding rope --norm rmsnorm "
              "--activation swiglu (Llama)")


def architecture_for(cfg: ModelConfig, classifier: dict | None = None) -> Architecture:
    """The architecture for a model (classifier: its config.json "classifier" section), or UserError."""
    shape = (cfg.pos_encoding, cfg.norm, cfg.activation)
    if cfg.pos_encoding == "sinusoidal":
        raise UserError("cannot export: no transformers class adds a fixed sinusoidal table to √C-scaled "
                        f"embeddings; pretrain with {EXPORTABLE}")
    if cfg.qk_norm:
        raise UserError("cannot export: QK-norm (--qk-norm) has no equivalent in GPT-2, GPT-NeoX or Llama; "
                        "pretrain with --no-qk-norm")
    if cfg.value_embeddings:
        raise UserError("cannot export: value embeddings (--value-embeddings) have no equivalent in GPT-2, GPT-NeoX "
                        "or Llama; pretrain without --value-embeddings, or export --to onnx, which keeps them")
    if cfg.logit_softcap:
        raise UserError("cannot export: the logit soft-cap (--logit-softcap) has no equivalent in GPT-2, "
                        "GPT-NeoX or Llama; pretrain with --logit-softcap 0")
    if shape not in BY_SHAPE:
        raise UserError(f"cannot export: no transformers class computes --pos-encoding {shape[0]} --norm "
                        f"{shape[1]} --activation {shape[2]}; pretrain with {EXPORTABLE}")
    if classifier is not None and classifier.get("pooling", "last") != "last":
        raise UserError("cannot export: --pooling mean (the fine-tuning default) has no transformers equivalent "
                        "(its classifiers read the last non-padding token); fine-tune with --pooling last, or "
                        "export --to onnx, which keeps mean pooling")
    if classifier is not None and classifier.get("head_bias", True):
        raise UserError("cannot export: the classification head has a bias, which transformers' score layer "
                        "lacks; fine-tune with --no-head-bias (the default since the export exists)")
    return BY_SHAPE[shape]


def architecture_named(model_type: str, source: str) -> Architecture:
    if model_type not in BY_MODEL_TYPE:
        raise UserError(f"{source}: model_type {model_type!r} cannot be imported; minilm reads "
                        f"{', '.join(sorted(BY_MODEL_TYPE))}")
    return BY_MODEL_TYPE[model_type]
