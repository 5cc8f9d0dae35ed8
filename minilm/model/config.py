"""The shape of a MiniLM: every knob of the model, with what it is and why its default.

Each field carries its help text in `metadata["help"]`; `minilm/common/flags.py` turns the fields into
command-line flags, so `--help` and this file can never disagree. Validation happens in
`__post_init__` with messages that say what to change.
"""

from __future__ import annotations

import math
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any

POS_ENCODINGS = ("learned", "sinusoidal", "rope")
ATTN_IMPLS = ("explicit", "fused")
NORMS = ("layernorm", "rmsnorm")
ACTIVATIONS = ("gelu", "swiglu", "relu2")


class ConfigError(ValueError):
    """A model setting that cannot work (e.g. d_model not divisible by n_head); the message says
    what to change. The model layer imports torch only, so it has its own error type; the
    command-line entry points print it as one line like every other user error."""


def option(default: Any, help: str, choices: tuple[str, ...] | None = None, aliases: tuple[str, ...] = (),
           flag: str | None = None) -> Any:
    """A dataclass field with a default, a help string and (optionally) the allowed values, its
    flag's name when it is not the field's (--ckpt for `init`) and other flag names that mean
    the same (kept so older commands keep working)."""
    return field(default=default, metadata={"help": help, "choices": choices, "aliases": aliases, "flag": flag})


def required(help: str, aliases: tuple[str, ...] = ()) -> Any:
    """A dataclass field the user must set (no default)."""
    return field(metadata={"help": help, "aliases": aliases})


@dataclass
class ModelConfig:
    """The shape of a MiniLM. Sizes have no defaults: a model's size is the user's decision."""

    vocab_size: int = required("number of token ids the embedding table holds")
    context_length: int = required("longest sequence the model attends over (T_max)")
    n_layer: int = required("number of Transformer blocks")
    n_head: int = required("attention heads per block; d_model must be divisible by it")
    d_model: int = required("width of the residual stream (C)")
    dropout: float = option(0.0, "dropout on the residual branches and the embeddings (not on the attention "
                                 "weights: see minilm/model/attention.py); 0 for pretraining on plenty of "
                                 "data, ~0.1 when data is small")
    pos_encoding: str = option("rope", "how positions are encoded: learned absolute (GPT-2), fixed "
                                       "sinusoidal (Vaswani et al.) or rotary (RoPE)", POS_ENCODINGS)
    attn_impl: str = option("fused", "explicit: attention written out step by step (read this one); "
                                     "fused: torch's scaled_dot_product_attention (same maths, faster)",
                            ATTN_IMPLS)
    norm: str = option("layernorm", "normalisation before each sub-layer: LayerNorm (GPT-2) or "
                                    "RMSNorm (LLaMA, no mean subtraction, a little cheaper)", NORMS)
    activation: str = option("gelu", "MLP type: GELU (GPT-2), SwiGLU (gated, LLaMA) or ReLU² (relu(x)², "
                                     "as cheap as GELU and better in nanochat's and Primer's ablations)",
                             ACTIVATIONS)
    bias: bool = option(True, "use bias vectors in Linear layers and LayerNorm")
    tie_weights: bool = option(True, "share the token embedding matrix with the output projection "
                                     "(saves vocab_size*d_model parameters)")
    d_ff: int = option(0, "hidden width of the MLP; 0 picks 4*d_model for GELU and ReLU², and ~8/3*d_model "
                          "rounded up to a multiple of 64 for SwiGLU (about the same parameter count)")
    rope_base: float = option(10000.0, "RoPE / sinusoidal base: the slowest frequency's wavelength scale")
    qk_norm: bool = option(False, "QK-norm: scale each head's queries and keys to unit RMS before q·k, so "
                                  "attention logits stay bounded and larger learning rates stay stable")
    logit_softcap: float = option(0.0, "cap the output logits smoothly at ±c with c·tanh(z/c) (0 = off): "
                                       "no token can become absurdly confident early in training")
    value_embeddings: bool = option(False, "value embeddings: each block adds a learned vector of the token itself "
                                           "to its attention values, v = x W_v + E_v[token] (a table per block, "
                                           "starting at 0; V·C parameters each). Off by default: no transformers "
                                           "class has them, so --to hf refuses such a model")
    zero_init_residual: bool = option(False, "initialise the projections that write into the residual "
                                             "stream to zero, so every block starts as the identity (off "
                                             "for a model built by hand; on in train_pretrain.py's recipe)")

    def __post_init__(self) -> None:
        for name in ("vocab_size", "context_length", "n_layer", "n_head", "d_model"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if self.d_model % self.n_head:
            raise ConfigError(
                f"d_model ({self.d_model}) must be divisible by n_head ({self.n_head}); "
                f"try n_head in {divisors(self.d_model)}"
            )
        for name, allowed in (("pos_encoding", POS_ENCODINGS), ("attn_impl", ATTN_IMPLS),
                              ("norm", NORMS), ("activation", ACTIVATIONS)):
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name} must be one of {', '.join(allowed)}; got {getattr(self, name)!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.pos_encoding == "rope" and self.head_size % 2:
            raise ConfigError(f"rope needs an even head size; d_model/n_head = {self.head_size}")
        if self.pos_encoding == "sinusoidal" and self.d_model % 2:
            raise ConfigError(f"sinusoidal positions need an even d_model, got {self.d_model}")
        if not (self.rope_base > 0 and math.isfinite(self.rope_base)):
            raise ConfigError(f"rope_base must be positive, got {self.rope_base}")
        if not self.logit_softcap >= 0:
            raise ConfigError(f"logit_softcap must be >= 0 (0 = off), got {self.logit_softcap}")
        if self.d_ff < 0:
            raise ConfigError(f"d_ff must be >= 0 (0 = automatic), got {self.d_ff}")
        if self.d_ff == 0:
            self.d_ff = default_d_ff(self.d_model, self.activation)

    @property
    def head_size(self) -> int:
        return self.d_model // self.n_head

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ModelConfig:
        """Build from a saved dict (config.json's "model" section), refusing unknown or missing keys
        and values of the wrong type ("dropout": "0.1"): a typo must not pass silently."""
        if not isinstance(values, dict):
            raise ConfigError(f"the model settings must be a JSON object, got {type(values).__name__}")
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ConfigError(f"unknown model config keys {unknown}; known keys: {sorted(known)}")
        missing = sorted(name for name, f in known.items() if f.default is MISSING and name not in values)
        if missing:
            raise ConfigError(f"model config is missing {missing}")
        for name, value in values.items():
            check_type(name, value, known[name].type)
        return cls(**values)


def check_type(name: str, value: Any, annotation: str) -> None:
    """Refuse a value whose JSON type does not fit the field (an int is a fine float; a bool is no int)."""
    kind = {"int": int, "float": float, "str": str, "bool": bool}[annotation]  # a string: see the __future__ import
    fits = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
    if kind is float:
        fits = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not fits:
        wanted = {int: "an integer", float: "a finite number", str: "a string", bool: "true or false"}[kind]
        raise ConfigError(f"model setting {name} must be {wanted}, got {value!r}")


def default_d_ff(d_model: int, activation: str) -> int:
    if activation in ("gelu", "relu2"):
        return 4 * d_model
    # SwiGLU has three matrices instead of two; 2/3 of 4*d_model keeps the parameter count equal.
    return 64 * -(-(8 * d_model // 3) // 64)


def divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


# Presets are promises about compute (the README's "Choosing a model"). Parameter counts are for
# the default vocabulary of each job and tied weights.
PRESETS: dict[str, dict[str, int]] = {
    # seconds on a CPU: for tests and smoke runs
    "tiny": dict(context_length=64, n_layer=2, n_head=2, d_model=64),
    # minutes on a laptop CPU: the default pretraining run (~1.3M parameters with a 4k vocabulary)
    "small": dict(context_length=128, n_layer=4, n_head=4, d_model=128),
    # a long CPU run or a short GPU run (~12M parameters with an 8k vocabulary)
    "medium": dict(context_length=256, n_layer=6, n_head=6, d_model=384),
    # GPT-2 small's shape (124M with its 50k vocabulary): for a GPU
    "gpt2-small": dict(context_length=1024, n_layer=12, n_head=12, d_model=768),
}
