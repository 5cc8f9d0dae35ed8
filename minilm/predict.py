"""Using a fine-tuned classifier: load it from its dir, and turn texts into class probabilities."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from minilm.checkpoint import load_checked_tokenizer, load_state_dict, load_weights_into, read_config
from minilm.classifier import MiniLMForSequenceClassification
from minilm.config import FinetuneConfig, ModelConfig
from minilm.errors import UserError
from minilm.labeled_data import LabelMap, encode_texts, pad_batch
from minilm.runtime import autocast
from minilm.tokenizer import Tokenizer


def load_classifier(ckpt_dir: str | Path, device: torch.device
                    ) -> tuple[MiniLMForSequenceClassification, Tokenizer, LabelMap]:
    """A fine-tuned dir -> (classifier in eval mode on device, its tokenizer, its labels)."""
    ckpt_dir = Path(ckpt_dir)
    config = read_config(ckpt_dir)
    if config.get("kind") != "finetune" or "classifier" not in config:
        raise UserError(f"{ckpt_dir} holds a {config.get('kind', 'unknown')} checkpoint, not a fine-tuned "
                        f"classifier: run `python train_finetune.py --out {ckpt_dir}` first")
    model = MiniLMForSequenceClassification(ModelConfig.from_dict(config["model"]),
                                            config["classifier"]["num_labels"], config["classifier"]["pooling"])
    load_weights_into(model, load_state_dict(ckpt_dir), ckpt_dir / "model.pt")
    tokenizer = load_checked_tokenizer(ckpt_dir, config)
    return model.to(device).eval(), tokenizer, LabelMap.load(ckpt_dir / "labels.json")


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


def run_predict(cfg: FinetuneConfig, device: torch.device) -> dict:
    """--predict / --predict-file: print each text's label and class probabilities."""
    texts = list(cfg.predict or [])
    if cfg.predict_file:
        path = Path(cfg.predict_file)
        if not path.is_file():
            raise UserError(f"--predict-file {path} does not exist")
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError as err:
            raise UserError(f"--predict-file {path} is not UTF-8 text (byte {err.start}); save it as UTF-8") from None
        texts += [line.strip() for line in lines if line.strip()]
    if not texts:
        raise UserError("nothing to classify: --predict needs at least one text, --predict-file a non-empty file")
    model, tokenizer, labels = load_classifier(cfg.out, device)
    context = model.cfg.context_length
    max_length = min(cfg.max_length or context, context)
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
