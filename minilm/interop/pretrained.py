"""What MiniLM.from_pretrained / save_pretrained and the classifier's predict do.

The model classes (minilm/model/) import torch only and never touch a file, so their methods
import this module when called. A checkpoint dir is the one train_pretrain.py and
train_finetune.py write (minilm/checkpoint.py reads them); the loaded model carries its tokenizer
(and a classifier its label names) so that predict(texts) needs nothing else.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import torch

from minilm.checkpoint import load_classifier, load_lm, read_config
from minilm.common.errors import UserError
from minilm.common.files import save_json, save_torch
from minilm.common.run_dir import RunDir
from minilm.common.runtime import resolve_device
from minilm.model.classifier import MiniLMForSequenceClassification
from minilm.model.gpt import MiniLM
from minilm.text.labeled import LabelMap, encode_texts
from minilm.text.tokenizer import Tokenizer
from minilm.tools.predict import classify


class Predictions(NamedTuple):
    labels: list[str]  # the most probable label of each text
    probabilities: torch.Tensor  # (N, num_labels), each row sums to 1, columns in model.labels order


def load_lm_dir(path: str | Path, device: str | torch.device) -> MiniLM:
    model, tokenizer = load_lm(path, resolve_device(str(device)))
    model.tokenizer = tokenizer
    return model


def load_classifier_dir(path: str | Path, labels: list[str] | None,
                        device: str | torch.device) -> MiniLMForSequenceClassification:
    """A fine-tuned dir as it is, or a pretraining dir's body under a fresh head for `labels`."""
    device = resolve_device(str(device))  # one clear line for a device this machine lacks
    kind = read_config(path).get("kind")
    if kind == "finetune":
        model, tokenizer, label_map = load_classifier(path, device)
        if labels is not None and list(labels) != label_map.names:
            raise UserError(f"{path} was fine-tuned on labels {label_map.names}, not {list(labels)}; "
                            "drop labels= to use them")
        labels = label_map.names
    else:
        check_label_names(labels, path, kind)
        lm, tokenizer = load_lm(path, torch.device("cpu"))
        model = MiniLMForSequenceClassification.from_pretrained_lm(lm, len(labels)).to(device).eval()
    model.tokenizer, model.labels = tokenizer, list(labels)
    return model


def check_label_names(labels, path: str | Path, kind: str) -> None:
    """labels= for a fresh head: a list of two or more distinct, non-empty strings."""
    if not isinstance(labels, (list, tuple)) or len(labels) < 2:
        raise UserError(f"{path} holds a {kind} checkpoint without a classification head: pass "
                        "labels=[...] (a list of two or more names) for the new head")
    if not all(isinstance(name, str) and name.strip() for name in labels) or len(set(labels)) != len(labels):
        raise UserError(f"labels= must be distinct, non-empty strings, got {list(labels)!r}")


def save_dir(model: MiniLM | MiniLMForSequenceClassification, path: str | Path, overwrite: bool = False) -> None:
    """save_pretrained: refuses a dir that already holds a checkpoint (a training run's, say) unless
    overwrite=True, which removes that run's files first so nothing stale is left beside the new ones."""
    if model.tokenizer is None:
        raise UserError("save_pretrained needs the model's tokenizer: load the model with from_pretrained, "
                        "or set model.tokenizer = minilm.text.tokenizer.Tokenizer.load(...)")
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{path} is a file; save_pretrained writes a dir: choose a dir path")
    if (path / "config.json").is_file() or (path / "model.pt").is_file():
        if not overwrite:
            raise UserError(f"{path} already holds a checkpoint; pass overwrite=True to replace it, or choose "
                            "another dir")
        RunDir(path, overwrite=True).replace_old_run()
    write_checkpoint(path, model, model.tokenizer, getattr(model, "labels", None))


def write_checkpoint(path: str | Path, model: MiniLM | MiniLMForSequenceClassification, tokenizer: Tokenizer,
                     labels: list[str] | None = None, note: str = "") -> None:
    """config.json + model.pt + tokenizer.model (+ labels.json): a dir minilm/checkpoint.py reads back."""
    classifier = isinstance(model, MiniLMForSequenceClassification)
    if classifier and (labels is None or len(labels) != model.num_labels):
        raise UserError(f"the classifier has {model.num_labels} classes: set model.labels to their names")
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"cannot create {path}: {err.strerror}; choose a dir you can write") from None
    config = {"kind": "finetune" if classifier else "pretrain", "model": model.cfg.to_dict(),
              "tokenizer": {"fingerprint": tokenizer.fingerprint, "vocab_size": tokenizer.vocab_size},
              "job": {}, **({"init": note} if note else {})}
    if classifier:
        config["classifier"] = {"num_labels": model.num_labels, "pooling": model.pooling,
                                "head_bias": model.head.bias is not None, "labels": list(labels),
                                "window_stride": model.window_stride, "max_windows": model.max_windows}
        LabelMap(labels).save(path / "labels.json")
    tokenizer.save(path / "tokenizer.model")
    save_torch({k: v.detach().cpu() for k, v in model.state_dict().items()}, path / "model.pt")
    save_json(config, path / "config.json")


def predict(model: MiniLMForSequenceClassification, texts: list[str], batch_size: int = 64) -> Predictions:
    """Texts -> their labels and class probabilities, framed and right-padded as in fine-tuning."""
    if model.tokenizer is None or model.labels is None:
        raise UserError("predict needs the tokenizer and labels: load the model with "
                        "MiniLMForSequenceClassification.from_pretrained(dir)")
    if isinstance(texts, str):
        texts = [texts]
    texts = list(texts)
    if not all(isinstance(text, str) for text in texts):
        raise UserError("predict takes a list of strings (decode bytes first)")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise UserError(f"batch_size must be a positive integer, got {batch_size!r}")
    if not texts:
        return Predictions([], torch.empty(0, model.num_labels))
    seqs, _ = encode_texts(model.tokenizer, texts, model.max_input_tokens, head_and_tail=model.window_stride > 0)
    device = next(model.parameters()).device
    probs, _ = classify(model, seqs, device, torch.float32, batch_size)
    return Predictions([model.labels[int(i)] for i in probs.argmax(dim=1)], probs)
