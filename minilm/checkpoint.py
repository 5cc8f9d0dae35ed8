"""Checkpoint directories: atomic writes, safe loads, config and tokenizer next to the weights.

A checkpoint dir (out/pretrain, out/finetune, ...) holds
    config.json      {"kind": ..., "model": ModelConfig fields, "job": the job's settings, ...}
    model.pt         a plain state_dict, loadable with torch.load(weights_only=True)
    tokenizer.model  the SentencePiece model the token ids came from

Every file is written to a temporary name in the same folder and then renamed over the old one.
os.replace is atomic on POSIX and Windows, so a crash (or kill -9) at any moment leaves either
the old file or the new one, never half of one.
"""

from __future__ import annotations

import csv
import json
import pickle
from pathlib import Path
from typing import Any

import torch

from minilm.config import ModelConfig
from minilm.errors import UserError
from minilm.files import atomic_write
from minilm.model import MiniLM
from minilm.tokenizer import Tokenizer


def save_torch(obj: Any, path: str | Path) -> None:
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def save_csv(rows: list[dict], columns: list[str], path: str | Path) -> None:
    """Metric rows as a CSV file with a header; floats with 6 significant digits."""
    def write(tmp: str) -> None:
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            writer.writerows({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()} for r in rows)

    atomic_write(path, write)


def save_json(obj: Any, path: str | Path) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(obj, indent=2) + "\n"))


def load_torch(path: str | Path) -> Any:
    """torch.load with weights_only=True: tensors and plain containers only, never code.

    A pickle can run arbitrary code when unpickled; weights_only refuses anything that is not
    tensors, numbers, strings, lists, dicts, so a malicious or wrong file fails instead of running.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"{path} is not a plain tensor checkpoint (refused to load it: {first_line})") from None


def read_config(ckpt_dir: str | Path) -> dict[str, Any]:
    """The parsed config.json of a checkpoint dir, with a clear error if it is not one."""
    ckpt_dir = Path(ckpt_dir)
    if not ckpt_dir.is_dir():
        raise UserError(f"checkpoint dir {ckpt_dir} does not exist")
    path = ckpt_dir / "config.json"
    if not path.is_file():
        raise UserError(f"{ckpt_dir} is not a minilm checkpoint dir (no config.json in it)")
    try:
        config = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise UserError(f"{path} is not valid JSON ({err.msg} at line {err.lineno})") from None
    if not isinstance(config, dict) or "model" not in config:
        raise UserError(f"{path} has no 'model' section; was it written by minilm?")
    return config


def load_model_config(ckpt_dir: str | Path) -> ModelConfig:
    return ModelConfig.from_dict(read_config(ckpt_dir)["model"])


def load_state_dict(ckpt_dir: str | Path) -> dict[str, torch.Tensor]:
    """model.pt of a checkpoint dir, refused unless it is a dict of tensors."""
    path = Path(ckpt_dir) / "model.pt"
    state = load_torch(path)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"{path} is not a plain state_dict (a dict of tensors)")
    return state


def load_weights_into(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str | Path) -> None:
    """load_state_dict with a one-line error when the checkpoint does not fit the model."""
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        detail = str(err).strip().splitlines()
        raise UserError(f"weights in {source} do not fit the model in its config.json "
                        f"({detail[1].strip() if len(detail) > 1 else detail[0]})") from None


# Everything a run writes into its out dir (the token cache in tokens/ is kept: it is checked
# against the corpus and tokenizer each time).
RUN_FILES = ("config.json", "model.pt", "tokenizer.model", "trainer_state.pt", "metrics.csv", "report.json",
             "samples.txt", "loss.png", "labels.json", "predictions.tsv")


def claim_out_dir(out: Path, resume: bool, overwrite: bool, job: str) -> None:
    """Make sure starting a run in `out` cannot destroy a previous run by accident.

    A dir that already holds a checkpoint is only reused with --resume (continue it) or
    --overwrite (replace it: the old run's files are deleted first, so a crash early in the new
    run cannot leave old weights next to a new tokenizer); --resume on a dir with nothing to
    resume is an error too.
    """
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a directory; choose another --out")
    has_state = (out / "trainer_state.pt").is_file()
    has_run = has_state or (out / "model.pt").is_file()
    if resume and not has_state:
        raise UserError(f"nothing to resume in {out} (no trainer_state.pt); drop --resume to start a new run")
    if has_run and not resume and not overwrite:
        raise UserError(f"{out} already holds a {job} run; pass --resume to continue it, --overwrite to "
                        f"replace it, or --out to choose another dir")
    if overwrite and not resume:
        for name in RUN_FILES:
            (out / name).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)


def load_checked_tokenizer(ckpt_dir: Path, config: dict[str, Any]) -> Tokenizer:
    """The dir's tokenizer.model, refused if it is not the one config.json says the model used."""
    tokenizer = Tokenizer.load(ckpt_dir / "tokenizer.model")
    saved_fingerprint = config.get("tokenizer", {}).get("fingerprint")
    if saved_fingerprint is not None and saved_fingerprint != tokenizer.fingerprint:
        raise UserError(f"{ckpt_dir / 'tokenizer.model'} (fingerprint {tokenizer.fingerprint}) is not the tokenizer "
                        f"the model was trained with (config.json says {saved_fingerprint}); put that one back")
    return tokenizer


def load_lm(ckpt_dir: str | Path, device: torch.device) -> tuple[MiniLM, Tokenizer]:
    """The language model of a pretrain or finetune checkpoint dir, in eval mode on `device`, and its tokenizer.

    A fine-tuned dir's model.pt is a classifier's state_dict: body.* and lm_head.weight (the LM
    head is kept) plus head.* (the classification head). Dropping head.* leaves exactly a MiniLM.
    """
    ckpt_dir = Path(ckpt_dir)
    config = read_config(ckpt_dir)
    tokenizer = load_checked_tokenizer(ckpt_dir, config)
    state = load_state_dict(ckpt_dir)
    if "lm_head.weight" not in state:
        raise UserError(f"{ckpt_dir / 'model.pt'} has no language-model head (no lm_head.weight), "
                        "so it cannot predict tokens; use a pretrain or finetune checkpoint dir")
    model = MiniLM(ModelConfig.from_dict(config["model"]))
    if tokenizer.vocab_size > model.cfg.vocab_size:
        raise UserError(f"{ckpt_dir / 'tokenizer.model'} has {tokenizer.vocab_size} ids but the model only "
                        f"{model.cfg.vocab_size}: they do not belong together")
    lm_state = {k: v for k, v in state.items() if k.startswith(("body.", "lm_head."))}
    load_weights_into(model, lm_state, ckpt_dir / "model.pt")
    return model.to(device).eval(), tokenizer
