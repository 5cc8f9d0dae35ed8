"""A tiny checkpoint dir like train_pretrain.py (or train_finetune.py) writes, built in a second."""

from pathlib import Path

import torch

from minilm import MiniLM, MiniLMForSequenceClassification, ModelConfig
from minilm.common.files import save_json, save_torch
from minilm.text.tokenizer import Tokenizer

CORPUS = Path(__file__).parent / "fixtures" / "tiny_corpus.txt"


def make_checkpoint(ckpt_dir: Path, kind: str = "pretrain") -> Path:
    """config.json + model.pt + tokenizer.model of an untrained 1-layer model (vocab 300, T = 16).

    kind "finetune": model.pt is a classifier's state_dict (body.*, lm_head.weight, head.*).
    The weights depend only on the seed, so a pretrain and a finetune dir share body and LM head.
    """
    tokenizer = Tokenizer.train(CORPUS, ckpt_dir / "tokenizer.model", vocab_size=300)
    cfg = ModelConfig(vocab_size=300, context_length=16, n_layer=1, n_head=2, d_model=32)
    torch.manual_seed(0)
    lm = MiniLM(cfg)
    config = {"kind": kind, "model": cfg.to_dict(), "job": {},
              "tokenizer": {"fingerprint": tokenizer.fingerprint, "vocab_size": tokenizer.vocab_size}}
    state = lm.state_dict()
    if kind == "finetune":
        config["classifier"] = {"num_labels": 2, "pooling": "last", "head_bias": False}
        state = MiniLMForSequenceClassification.from_pretrained_lm(lm, num_labels=2).state_dict()
    save_json(config, ckpt_dir / "config.json")
    save_torch(state, ckpt_dir / "model.pt")
    return ckpt_dir
