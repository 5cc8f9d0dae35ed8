"""Look at what the heads attend to: a heat-map of every layer's and head's attention weights.

    python -m minilm.attention_map --ckpt out/pretrain --text "the soup was not great" --png attention.png
    python -m minilm.attention_map --ckpt out/finetune --text "..." --layer 1 --head 0   # one panel

Panel (layer l, head h) is the (T, T) matrix A = softmax(Q Kᵀ / √hs + M) of that head for the
sentence: row t (a query token) says how much token t reads each earlier token (a key), so
every row sums to 1 and everything above the diagonal is 0 (no token sees the future). The
first token ([bos]) often collects much of the weight: heads with nothing to look for park
their attention there (an "attention sink", Xiao et al. 2023).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from minilm.checkpoint import CKPT_HELP, load_lm
from minilm.common.errors import UserError, exit_on_user_error
from minilm.common.flags import parse_config
from minilm.common.plots import pyplot, save_figure
from minilm.common.run_dir import check_output_file
from minilm.common.runtime import DEVICE_HELP, resolve_device
from minilm.model.config import option, required
from minilm.model.gpt import MiniLM
from minilm.tools.generate import encode_prompt


@torch.no_grad()
def attention_maps(model: MiniLM, input_ids: torch.Tensor) -> torch.Tensor:
    """input_ids (1, T) -> attention weights (n_layer, nh, T, T), read block by block.

    Each block's attention sees Norm_1 of the residual stream (pre-norm: x + Attention(Norm_1(x))),
    so that is what its weights are computed from; the block itself then moves the stream on.
    """
    model.eval()  # no dropout: the weights the model really uses
    body = model.body
    x, rotary = body.embed(input_ids)  # (1, T, C)
    maps = []
    for i, block in enumerate(body.blocks):
        maps.append(block.attn.attention_weights(block.norm1(x), rotary)[0])  # (nh, T, T)
        x = block(x, rotary, value_embedding=body.value_embedding(i, input_ids))  # (1, T, C)
    return torch.stack(maps)  # (n_layer, nh, T, T)


def plot_attention(maps: torch.Tensor, tokens: list[str], path: Path, layers: list[int], heads: list[int],
                   title: str) -> None:
    """A grid of heat-maps, one row per layer and one column per head, tokens on both axes."""
    plt = pyplot()
    if plt is None:
        raise UserError('drawing attention maps needs matplotlib: pip install "minilm[plot]"')
    T = len(tokens)
    side = max(2.5, 0.28 * T)  # inches per panel: room for one token label per row
    fig, axes = plt.subplots(len(layers), len(heads), figsize=(side * len(heads) + 1, side * len(layers) + 0.5),
                             squeeze=False, layout="constrained")  # leaves room for the shared colour bar
    for row, layer in enumerate(layers):
        for col, head in enumerate(heads):
            ax = axes[row][col]
            image = ax.imshow(maps[layer, head].cpu().numpy(), cmap="viridis", vmin=0.0, vmax=1.0)
            ax.set_title(f"layer {layer}, head {head}", fontsize=9)
            ax.set_xticks(range(T), tokens, rotation=90, fontsize=7)
            ax.set_yticks(range(T), tokens, fontsize=7)
            if row == len(layers) - 1:
                ax.set_xlabel("key (attended to)", fontsize=8)
            if col == 0:
                ax.set_ylabel("query (reading)", fontsize=8)
    fig.colorbar(image, ax=axes, shrink=0.6, label="attention weight")
    fig.suptitle(title, fontsize=10)
    save_figure(fig, path, dpi=120)


def pick(index: int | None, count: int, what: str) -> list[int]:
    """[index] if one was asked for (checked), else all of 0..count-1."""
    if index is None:
        return list(range(count))
    if not 0 <= index < count:
        raise UserError(f"--{what} must be in 0..{count - 1} (the model has {count} {what}s), got {index}")
    return [index]


@dataclass
class AttentionMapConfig:
    """Everything the attention-map command can be told (each field is a flag: minilm/common/flags.py)."""

    text: str = required("the sentence to look at (a few words read best)")  # required fields come first
    ckpt: str = option("out/pretrain", CKPT_HELP)
    png: str = option("attention.png", "PNG file to write", aliases=("--out",))
    layer: int | None = option(None, "draw only this layer, 0-based (default: all)")
    head: int | None = option(None, "draw only this head, 0-based (default: all)")
    device: str = option("auto", DEVICE_HELP)


def parse_args(argv: list[str] | None = None) -> AttentionMapConfig:
    return parse_config(AttentionMapConfig, "attention-map",
                        "Draw the attention weights of every layer and head for one sentence as a PNG "
                        "grid of heat-maps.", argv)


def main(args: AttentionMapConfig) -> Path:
    """Write the heat-maps for args.text; return the PNG's path."""
    check_output_file(Path(args.png), "--png", "attention.png")  # before the model loads
    model, tokenizer = load_lm(args.ckpt, resolve_device(args.device))
    layers = pick(args.layer, model.cfg.n_layer, "layer")
    heads = pick(args.head, model.cfg.n_head, "head")
    ids = encode_prompt(tokenizer, args.text, model.cfg.context_length)  # [bos] + the text's ids
    maps = attention_maps(model, torch.tensor([ids], device=next(model.parameters()).device))
    out = Path(args.png)
    plot_attention(maps, [tokenizer.id_to_piece(i) for i in ids], out, layers, heads,
                   f"attention of {args.ckpt}: row = query token, column = key token")
    print(f"wrote {out}: {len(layers)} layer(s) x {len(heads)} head(s), {len(ids)} tokens")
    return out


@exit_on_user_error
def cli(argv: list[str] | None = None) -> None:
    """The entry point; returns None because console scripts exit with what it returns."""
    main(parse_args(argv))

