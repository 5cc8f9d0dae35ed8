"""A minilm checkpoint dir -> OUT/model.onnx, run by ONNX Runtime (or anything that reads ONNX).

    language model:  input_ids (B, T) int64                        -> logits (B, T, V)
    classifier:      input_ids (B, T), attention_mask (B, T) int64 -> probabilities (B, num_labels)
B and T are dynamic (T up to the context length). Inputs are built as minilm builds them: ids from
tokenizer.model (copied next to the graph, with labels.json for a classifier); classifier texts
framed as <s> text </s> and right-padded with id 0.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
from torch import nn

from minilm.checkpoint import load_classifier, load_lm, read_config
from minilm.common.errors import UserError


class LogitsOf(nn.Module):
    """MiniLM.forward returns (logits, loss); the graph returns the logits alone."""

    def __init__(self, lm: nn.Module):
        super().__init__()
        self.lm = lm

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.lm(input_ids)[0]  # (B, T, V)


class ProbabilitiesOf(nn.Module):
    """The classifier's logits turned into class probabilities inside the graph."""

    def __init__(self, classifier: nn.Module):
        super().__init__()
        self.classifier = classifier

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.classifier(input_ids, attention_mask)[0].float(), dim=-1)  # (B, K)


def export_onnx(ckpt_dir: str | Path, out: Path) -> Path:
    ckpt_dir = Path(ckpt_dir)
    config = read_config(ckpt_dir)
    try:
        import onnxscript  # noqa: F401  (torch's exporter needs it)
    except ImportError:
        raise UserError("this needs onnx and onnxscript: pip install 'minilm[onnx]'") from None
    cpu = torch.device("cpu")
    classifier = config.get("kind") == "finetune" and "classifier" in config
    model = load_classifier(ckpt_dir, cpu)[0] if classifier else load_lm(ckpt_dir, cpu)[0]
    T = min(8, model.cfg.context_length)
    batch, seq = torch.export.Dim("batch"), torch.export.Dim("sequence", max=model.cfg.context_length)
    example_ids = torch.ones(2, T, dtype=torch.int64)
    if classifier:
        wrapper, args, names = ProbabilitiesOf(model), (example_ids, torch.ones_like(example_ids)), \
            (["input_ids", "attention_mask"], ["probabilities"])
        shapes = {"input_ids": {0: batch, 1: seq}, "attention_mask": {0: batch, 1: seq}}
    else:
        wrapper, args, names = LogitsOf(model), (example_ids,), (["input_ids"], ["logits"])
        shapes = {"input_ids": {0: batch, 1: seq}}
    out.mkdir(parents=True, exist_ok=True)
    path = out / "model.onnx"
    torch.onnx.export(wrapper.eval(), args, str(path), input_names=names[0], output_names=names[1],
                      dynamic_shapes=shapes, dynamo=True, external_data=False, verbose=False)
    shutil.copy(ckpt_dir / "tokenizer.model", out / "tokenizer.model")
    if classifier:
        shutil.copy(ckpt_dir / "labels.json", out / "labels.json")
    return path
