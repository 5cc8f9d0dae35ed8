"""Moving state_dict tensors between minilm's names and a Hugging Face architecture's.

An architecture is a list of Rules, one per minilm tensor: its name, the HF name(s) it becomes and
two functions, there and back. The same list drives export and import, so the directions cannot
drift apart (tests/test_interop_hf.py: export -> import gives back bit-identical weights).

Biases: minilm's `bias` flag switches every Linear and LayerNorm bias at once. Some HF classes
always have some biases (GPT-2 all of them, GPT-NeoX its MLP and LayerNorms). A bias-free minilm
model is therefore first given explicit zero biases (the same function), converted, and the HF
class keeps the ones it has; importing goes the other way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from minilm.common.errors import UserError

Tensor = torch.Tensor


@dataclass(frozen=True)
class Rule:
    ours: str  # e.g. "body.blocks.0.attn.qkv.weight"
    theirs: tuple[str, ...]  # e.g. ("transformer.h.0.attn.c_attn.weight",)
    to_hf: Callable[[Tensor], tuple[Tensor, ...]]
    from_hf: Callable[..., Tensor]


def same(ours: str, theirs: str) -> Rule:
    """The tensor is stored as it is, under another name."""
    return Rule(ours, (theirs,), lambda t: (t,), lambda t: t)


def transposed(ours: str, theirs: str) -> Rule:
    """GPT-2's Conv1D stores a Linear's weight as (in, out), ours is nn.Linear's (out, in); biases (out,) stay."""
    flip = lambda t: t.t().contiguous() if t.dim() == 2 else t  # noqa: E731  (its own inverse)
    return Rule(ours, (theirs,), lambda t: (flip(t),), flip)


def split_qkv(ours: str, q: str, k: str, v: str) -> Rule:
    """Our one qkv (3C, C) [rows: all q, all k, all v] <-> three (C, C) projections (Llama); biases alike."""
    return Rule(ours, (q, k, v), lambda t: tuple(t.chunk(3, dim=0)), lambda *qkv: torch.cat(qkv, dim=0))


def interleaved_qkv(ours: str, theirs: str, n_head: int) -> Rule:
    """GPT-NeoX packs qkv head by head: rows (nh, 3, hs), where ours are (3, nh, hs).

    Its attention views the (B, T, 3C) projection as (B, T, nh, 3·hs) and chunks the last axis into
    q, k, v; ours splits (B, T, 3C) into three (B, T, C) first. Same numbers, rows reordered.
    """
    def reorder(t: Tensor, groups: tuple[int, int]) -> Tensor:  # (3C, ...) viewed as (a, b, hs, ...)
        return t.unflatten(0, (*groups, -1)).transpose(0, 1).flatten(0, 2).contiguous()

    return Rule(ours, (theirs,), lambda t: (reorder(t, (3, n_head)),), lambda t: reorder(t, (n_head, 3)))


def weight_and_bias(make: Callable[..., Rule], ours: str, theirs: str, *extra) -> list[Rule]:
    """Rules for a Linear or a norm: ours.weight -> theirs.weight and ours.bias -> theirs.bias."""
    return [make(f"{ours}.weight", f"{theirs}.weight", *extra), make(f"{ours}.bias", f"{theirs}.bias", *extra)]


def with_zero_biases(state: dict[str, Tensor], rules: list[Rule]) -> dict[str, Tensor]:
    """A bias-free state with explicit zero biases wherever a rule names one (weight (out, ...) -> bias (out,))."""
    full = dict(state)
    for rule in rules:
        if rule.ours.endswith(".bias") and rule.ours not in full:
            weight = full[rule.ours.removesuffix(".bias") + ".weight"]
            full[rule.ours] = torch.zeros(weight.size(0), dtype=weight.dtype)
    return full


def to_hf(state: dict[str, Tensor], rules: list[Rule], hf_names: set[str]) -> dict[str, Tensor]:
    """minilm state -> HF state with exactly `hf_names` (the HF model's own keys)."""
    full = with_zero_biases(state, rules)
    out = {}
    for rule in rules:
        for name, tensor in zip(rule.theirs, rule.to_hf(full[rule.ours]), strict=True):
            if name in hf_names:
                out[name] = tensor
            elif tensor.any():  # only an all-zero bias may be left behind: it changes nothing
                raise AssertionError(f"{rule.ours} has no place in the HF model ({name})")
    return out


def from_hf(hf_state: dict[str, Tensor], rules: list[Rule], source: str) -> dict[str, Tensor]:
    """HF state -> minilm state; a bias the HF model does not have is left out."""
    state = {}
    for rule in rules:
        parts = [hf_state.get(name) for name in rule.theirs]
        if any(p is None for p in parts):
            if not rule.ours.endswith(".bias"):
                raise UserError(f"{source} has no {rule.theirs[0]}: not a checkpoint of the architecture "
                                "its config.json names")
            continue
        state[rule.ours] = rule.from_hf(*parts).contiguous()
    return state


def without_biases(state: dict[str, Tensor], source: str) -> dict[str, Tensor]:
    """The state of a bias-free minilm model: every bias dropped, which must change nothing."""
    nonzero = [name for name, t in state.items() if name.endswith(".bias") and t.any()]
    if nonzero:
        raise UserError(f"{source} has non-zero biases ({nonzero[0]}, ...) in some layers but not in others; "
                        "minilm's bias flag switches all of them together, so it cannot hold this model")
    return {name: t for name, t in state.items() if not name.endswith(".bias")}


@dataclass(frozen=True)
class Architecture:
    """One standard transformers architecture that computes some minilm models exactly."""

    name: str  # for messages: "GPT-2"
    model_type: str  # transformers' name: "gpt2"
    base: str  # the body's prefix in its state_dict: "transformer."
    hf_config: Callable  # ModelConfig -> dict of config.json fields (beyond common_config)
    model_config: Callable  # transformers config -> dict of ModelConfig fields, or UserError
    body_rules: Callable  # ModelConfig -> [Rule] for embeddings, blocks and the final norm
    bias_of: Callable  # transformers config -> minilm's bias flag, or None: "any non-zero bias"

    def rules(self, cfg, classifier: bool) -> list[Rule]:
        """The whole model: the body, then the LM head (C -> V) or the classification head (C -> K)."""
        head = same("head.weight", "score.weight") if classifier else same("lm_head.weight", "lm_head.weight")
        return [*self.body_rules(cfg), head]


def common_config(cfg) -> dict:
    """config.json fields every architecture shares: minilm's fixed special ids, eps, tying."""
    return {"vocab_size": cfg.vocab_size, "pad_token_id": 0, "bos_token_id": 2, "eos_token_id": 3,
            "tie_word_embeddings": cfg.tie_weights, "dtype": "float32"}


NORM_EPS = 1e-5  # minilm's LayerNorm and RMSNorm both use PyTorch's default


def require(source: str, setting: str, value, expected) -> None:
    """Refuse an HF model whose `setting` makes it compute something minilm cannot."""
    if value != expected:
        raise UserError(f"{source}: {setting} is {value!r}, minilm can only express {expected!r}")


def rope_settings(hf) -> dict:
    """rope_parameters (transformers >= 5) as {"rope_theta": ..., "rope_type": ..., ...}."""
    return dict(getattr(hf, "rope_parameters", None) or {})
