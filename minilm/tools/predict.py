"""Using a fine-tuned classifier: load it from its dir, and turn texts into class probabilities.

    python -m minilm.predict --ckpt out/finetune --text "the staff were superb" "never again"
    python -m minilm.predict --ckpt out/finetune --text-file reviews.txt     # one text a line
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from minilm.checkpoint import load_classifier, read_config
from minilm.common.errors import UserError, exit_on_user_error
from minilm.common.flags import parse_config
from minilm.common.progress import progress
from minilm.common.runtime import DEVICE_HELP, autocast, resolve_device
from minilm.model.classifier import MiniLMForSequenceClassification
from minilm.model.config import option
from minilm.text.labeled import encode_texts, pad_batch
from minilm.text.tokenizer import Tokenizer


@torch.no_grad()
def classify(model: MiniLMForSequenceClassification, seqs: list[list[int]], device: torch.device,
             dtype: torch.dtype, batch_size: int, label_ids: list[int] | None = None, desc: str = ""
             ) -> tuple[torch.Tensor, float | None]:
    """Token id sequences -> class probabilities (N, num_labels); with label_ids, also the mean loss.
    desc: show progress under this name (25,000 test reviews take minutes on a CPU)."""
    model.eval()
    probs, total_loss = [], 0.0
    for start in progress(range(0, len(seqs), batch_size), desc=desc, unit="batch", enabled=bool(desc),
                          leave=False):
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
    text's label and class probabilities. Blank texts are skipped, from either source.
    max_length 0 means the --max-length the model was trained with (its config.json), else its
    context length: a model trained on texts cut to 64 tokens should read them cut the same way."""
    texts = [text.strip() for text in texts or [] if text.strip()]
    if text_file:
        path = Path(text_file)
        if not path.is_file():
            raise UserError(f"text file {path} does not exist")
        try:
            lines = path.read_text(encoding="utf-8-sig").splitlines()
        except UnicodeDecodeError as err:
            raise UserError(f"text file {path} is not UTF-8 text (byte {err.start}); save it as UTF-8") from None
        except OSError as err:
            raise UserError(f"cannot read text file {path}: {err.strerror}") from None
        texts += [line.strip() for line in lines if line.strip()]
    if not texts:
        raise UserError("nothing to classify: pass at least one non-blank text (--text), or a file with a "
                        "non-blank line (--text-file)")
    model, tokenizer, labels = load_classifier(ckpt_dir, device)
    context = model.max_input_tokens  # the context, or the windows' reach for a model trained on windows
    trained_max_length = read_config(ckpt_dir).get("job", {}).get("max_length") or 0
    if not isinstance(trained_max_length, int):
        raise UserError(f"{Path(ckpt_dir) / 'config.json'}: job.max_length must be an integer, "
                        f"got {trained_max_length!r}")
    max_length = min(max_length or trained_max_length or context, context)
    seqs, n_cut = encode_texts(tokenizer, texts, max_length, head_and_tail=model.window_stride > 0)
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


@dataclass
class PredictConfig:
    """Everything the predict command can be told (each field is a flag: minilm/common/flags.py)."""

    ckpt: str = option("out/finetune", "fine-tuned checkpoint dir to read (written by fine-tuning)")
    text: list = option(None, "texts to classify", aliases=("--predict",))
    text_file: str = option("", "classify each line of this UTF-8 file", aliases=("--predict-file",))
    max_length: int = option(0, "longest input in tokens, longer texts are truncated (0 = the context length)")
    device: str = option("auto", DEVICE_HELP)


def parse_args(argv: list[str] | None = None) -> PredictConfig:
    return parse_config(PredictConfig, "predict",
                        "Classify texts with a fine-tuned MiniLM: each text's label and class "
                        "probabilities.", argv)


@exit_on_user_error
def cli(argv: list[str] | None = None) -> None:
    """The entry point; returns None because console scripts exit with what it returns."""
    args = parse_args(argv)
    run_predict(args.ckpt, args.text, args.text_file, args.max_length, resolve_device(args.device))
