"""Using a fine-tuned classifier: load it from its dir, and turn texts into class probabilities."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from minilm.checkpoint import load_classifier
from minilm.common.errors import UserError
from minilm.common.runtime import autocast
from minilm.model.classifier import MiniLMForSequenceClassification
from minilm.text.labeled import encode_texts, pad_batch
from minilm.text.tokenizer import Tokenizer


@torch.no_grad()
def classify(model: MiniLMForSequenceClassification, seqs: list[list[int]], device: torch.device,
             dtype: torch.dtype, batch_size: int, label_ids: list[int] | None = None
             ) -> tuple[torch.Tensor, float | None]:
    """Token id sequences -> class probabilities (N, num_labels); with label_ids, also the mean loss."""
    model.eval()
    probs, total_loss = [], 0.0
    for start in range(0, len(seqs), batch_size):
        ids, mask = pad_batch(seqs[start:start + batch_size], Tokenizer.pad_id)  # (B, T) each
        with autocast(device, dtype):
            logits, _ = model(ids.to(device), mask.to(device))  # (B, num_labels)
        logits = logits.float()
        probs.append(torch.softmax(logits, dim=-1).cpu())
        if label_ids is not None:
            gold = torch.tensor(label_ids[start:start + batch_size], device=device)
            total_loss += F.cross_entropy(logits, gold, reduction="sum").item()
    return torch.cat(probs), (total_loss / len(seqs) if label_ids is not None else None)


def run_predict(ckpt_dir: str | Path, texts: list[str] | None, text_file: str, max_length: int,
                device: torch.device) -> dict:
    """Classify `texts` and each line of `text_file` with the fine-tuned model in ckpt_dir; print each
    text's label and class probabilities. max_length 0 means the model's context length."""
    texts = list(texts or [])
    if text_file:
        path = Path(text_file)
        if not path.is_file():
            raise UserError(f"--predict-file {path} does not exist")
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError as err:
            raise UserError(f"--predict-file {path} is not UTF-8 text (byte {err.start}); save it as UTF-8") from None
        texts += [line.strip() for line in lines if line.strip()]
    if not texts:
        raise UserError("nothing to classify: --predict needs at least one text, --predict-file a non-empty file")
    model, tokenizer, labels = load_classifier(ckpt_dir, device)
    context = model.cfg.context_length
    max_length = min(max_length or context, context)
    seqs, n_cut = encode_texts(tokenizer, texts, max_length)
    if n_cut:
        print(f"note: {n_cut} texts were truncated to {max_length} tokens")
    probs, _ = classify(model, seqs, device, torch.float32, 64)
    results = []
    for text, p in zip(texts, probs, strict=True):
        best = int(p.argmax())
        scores = {name: round(float(p[i]), 4) for i, name in enumerate(labels.names)}
        results.append({"text": text, "label": labels.names[best], "probabilities": scores})
        shown = "  ".join(f"{name} {score:.3f}" for name, score in scores.items())
        print(f"{labels.names[best]:<12} [{shown}]  {text}")
    return {"predictions": results}
