"""The optimizer: AdamW for every parameter, or Muon for the hidden weight matrices + AdamW for the rest.

AdamW (Loshchilov & Hutter) scales each coordinate of the gradient by its own running RMS:
    m = β1·m + (1-β1)·g        v = β2·v + (1-β2)·g²        W -= lr · (m / (√v + ε) + λ·W)

Muon (Jordan et al., 2024) treats a weight matrix as a matrix. It keeps a momentum M of the
gradient and replaces it by the nearest semi-orthogonal matrix before stepping:
    M = μ·M + G                        (Nesterov: use G + μ·M)
    O = U Vᵀ   where M = U Σ Vᵀ          every singular value of the update set to 1
    W -= lr · (s·O + λ·W)              s = 0.2·√max(rows, cols): O's RMS matched to AdamW's (~0.2)
so the same --lr suits both optimizers. U Vᵀ is never computed by an SVD: five Newton–Schulz
iterations (a cubic polynomial in M Mᵀ) push all singular values towards 1 using matmuls only.
Why it helps: a raw gradient matrix is dominated by a few directions (a few huge singular
values); orthogonalising gives the rare directions the same step size, so each update
changes the layer's function in many directions at once. It is meant for the 2-D matrices
inside the blocks only; embeddings, the output head, norm gains and biases keep AdamW.
"""

from __future__ import annotations

import torch
from torch import nn

OPTIMIZERS = ("adamw", "muon")


def param_groups(model: nn.Module, weight_decay: float, lr_scale: dict[str, float] | None = None) -> list[dict]:
    """Parameters split for AdamW: matrices decay, vectors (biases, norm gains) do not.

    Weight decay pulls weights towards 0 as a regulariser; on a norm's gain or a bias that
    only shifts or rescales, it fights the normalisation and helps nothing. Embeddings are
    matrices and decay (as in GPT-2 / nanoGPT). lr_scale maps a name prefix (e.g. "head.") to
    a multiplier of the base lr, for a separate classifier-head learning rate.
    """
    lr_scale = lr_scale or {}
    groups: dict[tuple[bool, float], list[nn.Parameter]] = {}
    for name, param in unique_trainable(model):
        scale = next((s for prefix, s in lr_scale.items() if name.startswith(prefix)), 1.0)
        groups.setdefault((param.dim() >= 2, scale), []).append(param)
    return [{"params": params, "weight_decay": weight_decay if decays else 0.0, "lr_scale": scale}
            for (decays, scale), params in groups.items()]


def unique_trainable(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """(name, parameter) for every parameter that trains, each tensor once (tied weights are one)."""
    seen: set[int] = set()
    found = []
    for name, param in model.named_parameters():
        if param.requires_grad and id(param) not in seen:
            seen.add(id(param))
            found.append((name, param))
    return found


def is_hidden_matrix(name: str, param: nn.Parameter) -> bool:
    """The matrices Muon is for: 2-D weights inside the Transformer blocks (attention and MLP)."""
    return param.dim() == 2 and ".blocks." in f".{name}"


class MuonWithAdamW:
    """Muon for the hidden matrices, AdamW for everything else, stepped together as one optimizer.

    Exposes what the Trainer and torch's GradScaler use: param_groups (both optimizers' groups,
    each with its "lr_scale"), step, zero_grad, state_dict, load_state_dict.
    """

    def __init__(self, model: nn.Module, lr: float, weight_decay: float, betas: tuple[float, float],
                 lr_scale: dict[str, float] | None, fused: bool, momentum: float = 0.95):
        hidden = [p for name, p in unique_trainable(model) if is_hidden_matrix(name, p)]
        hidden_ids = {id(p) for p in hidden}
        self.muon = torch.optim.Muon([{"params": hidden, "lr_scale": 1.0}], lr=lr, weight_decay=weight_decay,
                                     momentum=momentum, adjust_lr_fn="match_rms_adamw")
        rest = []
        for group in param_groups(model, weight_decay, lr_scale):
            params = [p for p in group["params"] if id(p) not in hidden_ids]
            if params:
                rest.append({**group, "params": params})
        adamw = [torch.optim.AdamW(rest, lr=lr, betas=betas, fused=fused)] if rest else []
        self.optimizers = [self.muon, *adamw]

    @property
    def param_groups(self) -> list[dict]:
        return [group for opt in self.optimizers for group in opt.param_groups]

    def step(self) -> None:
        for opt in self.optimizers:
            opt.step()

    def zero_grad(self, set_to_none: bool = True) -> None:
        for opt in self.optimizers:
            opt.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict:
        return {type(opt).__name__.lower(): opt.state_dict() for opt in self.optimizers}

    def load_state_dict(self, state: dict) -> None:
        for opt in self.optimizers:
            opt.load_state_dict(state[type(opt).__name__.lower()])


def build_optimizer(model: nn.Module, name: str, lr: float, weight_decay: float, betas: tuple[float, float],
                    lr_scale: dict[str, float] | None, device: torch.device):
    """The optimizer a Trainer steps. fused=True runs AdamW's update as one kernel per group instead
    of a Python loop over tensors: ~5x faster optimizer steps on a CPU (torch >= 2.4), more on CUDA."""
    fused = device.type in ("cuda", "cpu")
    if name == "muon" and any(is_hidden_matrix(n, p) for n, p in unique_trainable(model)):
        return MuonWithAdamW(model, lr, weight_decay, betas, lr_scale, fused)
    # AdamW alone: asked for, or Muon has nothing to train (e.g. a frozen body under a probe)
    return torch.optim.AdamW(param_groups(model, weight_decay, lr_scale), lr=lr, betas=betas, fused=fused)
