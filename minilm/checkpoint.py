"""Checkpoint directories: reading the config, weights and tokenizer a run saved, safely.

A checkpoint dir (out/pretrain, out/finetune, ...) holds
    config.json      {"kind": ..., "model": ModelConfig fields, "job": the job's settings, ...}
    model.pt         a plain state_dict, loadable with torch.load(weights_only=True)
    tokenizer.model  the SentencePiece model the token ids came from

This module builds models and tokenizers from such dirs (writing them is minilm/common/files.py's
job). It is the one place that knows the layout, so the model layer never touches a file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from minilm.common.errors import UserError
from minilm.common.files import load_torch
from minilm.model.classifier import POOLINGS, MiniLMForSequenceClassification
from minilm.model.config import ConfigError, ModelConfig
from minilm.model.gpt import MiniLM
from minilm.text.labeled import LabelMap
from minilm.text.tokenizer import Tokenizer

# The --ckpt flag of every command that reads a checkpoint dir.
CKPT_HELP = "checkpoint dir to read, written by pretraining or fine-tuning (config.json, model.pt, tokenizer.model)"


def read_config(ckpt_dir: str | Path) -> dict[str, Any]:
    """The parsed config.json of a checkpoint dir, with a clear error if it is not one."""
    ckpt_dir = Path(ckpt_dir)
    if not ckpt_dir.is_dir():
        raise UserError(f"checkpoint dir {ckpt_dir} does not exist")
    path = ckpt_dir / "config.json"
    if not path.is_file():
        raise UserError(f"{ckpt_dir} is not a minilm checkpoint dir (no config.json in it)")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise UserError(f"{path} is not valid JSON ({err.msg} at line {err.lineno})") from None
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"cannot read {path}: {getattr(err, 'strerror', None) or err}") from None
    check_config_sections(config, path)
    return config


# The sections of config.json and what each must be; "model" and "kind" are always there.
CONFIG_SECTIONS = {"kind": str, "model": dict, "job": dict, "tokenizer": dict, "classifier": dict}


def check_config_sections(config: Any, path: Path) -> None:
    """Refuse a config.json that is not minilm's shape, naming the section (hand edits happen)."""
    if not isinstance(config, dict) or "model" not in config:
        raise UserError(f"{path} has no 'model' section; was it written by minilm?")
    for name, kind in CONFIG_SECTIONS.items():
        if name in config and not isinstance(config[name], kind):
            raise UserError(f"{path}: section {name!r} must be a JSON {'object' if kind is dict else 'string'}, "
                            f"got {type(config[name]).__name__}")
    try:
        ModelConfig.from_dict(config["model"])
    except ConfigError as err:
        raise UserError(f"{path}: {err}") from None
    classifier = config.get("classifier")
    if classifier is not None:
        if not (isinstance(classifier.get("num_labels"), int) and classifier["num_labels"] >= 2
                and classifier.get("pooling") in POOLINGS):
            raise UserError(f"{path}: section 'classifier' needs num_labels (an integer >= 2) and pooling "
                            f"({' or '.join(POOLINGS)}), got {classifier}")
        for key, least in (("window_stride", 0), ("max_windows", 1)):  # absent in runs from before windows
            value = classifier.get(key, least)
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise UserError(f"{path}: classifier {key} must be an integer >= {least}, got {value!r}")


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


def load_checked_tokenizer(ckpt_dir: Path, config: dict[str, Any]) -> Tokenizer:
    """The dir's tokenizer.model, refused if it is not the one config.json says the model used."""
    tokenizer = Tokenizer.load(ckpt_dir / "tokenizer.model")
    saved_fingerprint = config.get("tokenizer", {}).get("fingerprint")
    if saved_fingerprint is not None and saved_fingerprint != tokenizer.fingerprint:
        raise UserError(f"{ckpt_dir / 'tokenizer.model'} (fingerprint {tokenizer.fingerprint}) is not the tokenizer "
                        f"the model was trained with (config.json says {saved_fingerprint}); put that one back")
    return tokenizer


def lm_from_dir(ckpt_dir: str | Path) -> MiniLM:
    """The language model of a pretrain or finetune checkpoint dir, on the CPU, in train mode.

    A fine-tuned dir's model.pt is a classifier's state_dict: body.* and lm_head.weight (the LM
    head is kept) plus head.* (the classification head). Dropping head.* leaves exactly a MiniLM.
    """
    ckpt_dir = Path(ckpt_dir)
    cfg = load_model_config(ckpt_dir)
    state = load_state_dict(ckpt_dir)
    if "lm_head.weight" not in state:
        raise UserError(f"{ckpt_dir / 'model.pt'} has no language-model head (no lm_head.weight), "
                        "so it cannot predict tokens; use a pretrain or finetune checkpoint dir")
    model = MiniLM(cfg)
    lm_state = {k: v for k, v in state.items() if k.startswith(("body.", "lm_head."))}
    load_weights_into(model, lm_state, ckpt_dir / "model.pt")
    return model


def load_lm(ckpt_dir: str | Path, device: torch.device) -> tuple[MiniLM, Tokenizer]:
    """The language model of a checkpoint dir, in eval mode on `device`, and its tokenizer."""
    ckpt_dir = Path(ckpt_dir)
    tokenizer = load_checked_tokenizer(ckpt_dir, read_config(ckpt_dir))
    model = lm_from_dir(ckpt_dir)
    if tokenizer.vocab_size > model.cfg.vocab_size:
        raise UserError(f"{ckpt_dir / 'tokenizer.model'} has {tokenizer.vocab_size} ids but the model only "
                        f"{model.cfg.vocab_size}: they do not belong together")
    return model.to(device).eval(), tokenizer


def load_classifier(ckpt_dir: str | Path, device: torch.device
                    ) -> tuple[MiniLMForSequenceClassification, Tokenizer, LabelMap]:
    """A fine-tuned dir -> (classifier in eval mode on device, its tokenizer, its labels)."""
    ckpt_dir = Path(ckpt_dir)
    config = read_config(ckpt_dir)
    if config.get("kind") != "finetune" or "classifier" not in config:
        raise UserError(f"{ckpt_dir} holds a {config.get('kind', 'unknown')} checkpoint, not a fine-tuned "
                        f"classifier: fine-tune it first (`python train_finetune.py --ckpt {ckpt_dir} --out "
                        f"{ckpt_dir}-classifier`), then predict with --ckpt {ckpt_dir}-classifier")
    head = config["classifier"]
    # Checkpoints from before head_bias existed all had a head bias.
    model = MiniLMForSequenceClassification(ModelConfig.from_dict(config["model"]), head["num_labels"],
                                            head["pooling"], head_bias=head.get("head_bias", True),
                                            window_stride=head.get("window_stride", 0),
                                            max_windows=head.get("max_windows", 1))
    load_weights_into(model, load_state_dict(ckpt_dir), ckpt_dir / "model.pt")
    tokenizer = load_checked_tokenizer(ckpt_dir, config)
    labels = LabelMap.load(ckpt_dir / "labels.json")
    if len(labels) != model.num_labels:
        raise UserError(f"{ckpt_dir / 'labels.json'} names {len(labels)} labels but the classifier has "
                        f"{model.num_labels} (config.json): put back the labels.json written with this model")
    return model.to(device).eval(), tokenizer, labels
