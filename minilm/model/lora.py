"""LoRA (Hu et al., 2021): fine-tune a few low-rank matrices beside each frozen weight.

A pretrained linear layer y = x Wᵀ + b (W: out × in) is kept frozen; a trainable update of rank r
is added beside it:

    y = x Wᵀ + b + (α / r) · x Aᵀ Bᵀ          A: (r, in),  B: (out, r)

so the layer's effective weight is W + (α/r)·B A. B starts at 0, so at step 0 the model computes
exactly what the pretrained one did; A starts random, so B's gradient is not 0. The update has
r·(in + out) parameters instead of in·out: for a 128 × 384 projection at r = 8, 4,096 instead of
49,152. The bet (which the paper measured) is that the change fine-tuning needs has low rank.
After training, B A is added into W once (`merge_lora`): the merged model is a plain MiniLM
again, as fast as before, and every tool that reads a checkpoint reads it unchanged.
"""

from __future__ import annotations

import math

import torch
from torch import nn

# The projections inside each block LoRA wraps: attention's q/k/v and output, the MLP's matrices.
LORA_TARGETS = ("qkv", "out_proj", "up", "gate", "down")


class LoRALinear(nn.Module):
    """A frozen nn.Linear plus a trainable rank-r update: forward(x (..., in)) -> (..., out)."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float):
        super().__init__()
        if rank < 1:
            raise ValueError(f"LoRA rank must be >= 1, got {rank}")
        self.base = base
        self.base.requires_grad_(False)
        self.scale = alpha / rank
        self.lora_a = nn.Parameter(torch.empty(rank, base.in_features, device=base.weight.device))
        self.lora_b = nn.Parameter(torch.zeros(base.out_features, rank, device=base.weight.device))
        # A like a fresh nn.Linear's weight (Kaiming-uniform), B zero: the update starts at exactly 0.
        nn.init.kaiming_uniform_(self.lora_a, a=math.sqrt(5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (..., in) @ (in, r) @ (r, out): two thin matmuls, never the full (out, in) product
        return self.base(x) + (x @ self.lora_a.T @ self.lora_b.T) * self.scale

    def merged_weight(self) -> torch.Tensor:
        """W + (α/r)·B A (out, in): the plain weight that computes what this layer does."""
        return self.base.weight + self.scale * (self.lora_b @ self.lora_a)


def add_lora(body: nn.Module, rank: int, alpha: float) -> int:
    """Wrap every LORA_TARGETS linear inside body.blocks in a LoRALinear; return how many were wrapped.
    Only the adapters train afterwards: freeze the rest of the model yourself (the fine-tuning
    job trains the head as well)."""
    wrapped = 0
    for block in body.blocks:
        for parent in block.modules():
            for name, child in list(parent.named_children()):
                if name in LORA_TARGETS and isinstance(child, nn.Linear):
                    setattr(parent, name, LoRALinear(child, rank, alpha))
                    wrapped += 1
    return wrapped


def merge_lora(model: nn.Module) -> None:
    """Replace every LoRALinear by a plain nn.Linear holding W + (α/r)·B A: the same function, no adapters."""
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, LoRALinear):
                plain = child.base
                with torch.no_grad():
                    plain.weight.copy_(child.merged_weight())
                plain.requires_grad_(True)
                setattr(parent, name, plain)


def merged_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """model.state_dict() as the merged model's: each LoRALinear's entries become `<name>.weight`
    (= W + (α/r)·B A) and `<name>.bias`. The model itself is left as it is (training goes on)."""
    state = model.state_dict()
    for name, module in model.named_modules():
        if isinstance(module, LoRALinear):
            for key in ("lora_a", "lora_b", "base.weight", "base.bias"):
                state.pop(f"{name}.{key}", None)
            state[f"{name}.weight"] = module.merged_weight().detach().clone()
            if module.base.bias is not None:
                state[f"{name}.bias"] = module.base.bias.detach().clone()
    return state
