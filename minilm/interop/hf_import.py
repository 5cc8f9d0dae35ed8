"""A local Hugging Face dir (GPT-2, GPT-NeoX or Llama shaped as minilm can be) -> a minilm checkpoint dir.

Nothing is downloaded: transformers reads the files on disk. The result is a pretraining dir (from
a *ForCausalLM) or a fine-tuned dir (from a *ForSequenceClassification), so train_finetune.py
--ckpt OUT, MiniLM.from_pretrained(OUT) and every tool take it like one of minilm's own.
The tokenizer must be minilm's kind: a SentencePiece tokenizer.model with pad/unk/bos/eos =
0/1/2/3 (every dir minilm exports has one); other tokenizers are refused.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch

from minilm.checkpoint import load_weights_into
from minilm.common.errors import UserError
from minilm.interop.hf_choose import architecture_named
from minilm.interop.hf_export import import_transformers
from minilm.interop.hf_weights import from_hf, without_biases
from minilm.interop.pretrained import write_checkpoint
from minilm.model.classifier import MiniLMForSequenceClassification
from minilm.model.config import ModelConfig
from minilm.model.gpt import MiniLM
from minilm.text.tokenizer import Tokenizer


def import_hf(hf_dir: str | Path, out: Path) -> str:
    """Write the checkpoint dir; returns "GPT-2 language model" or the like. UserError before writing."""
    hf_dir = Path(hf_dir)
    if not (hf_dir / "config.json").is_file():
        raise UserError(f"{hf_dir} is not a Hugging Face model dir (no config.json in it)")
    if not (hf_dir / "tokenizer.model").is_file():
        raise UserError(f"{hf_dir} has no tokenizer.model: minilm needs a SentencePiece tokenizer with "
                        "pad/unk/bos/eos ids 0/1/2/3, like the ones minilm exports")
    tokenizer = Tokenizer.load(hf_dir / "tokenizer.model")
    transformers = import_transformers()
    try:
        hf_config = transformers.AutoConfig.from_pretrained(hf_dir, local_files_only=True)
    except (ValueError, OSError) as err:  # e.g. a minilm dir: its config.json has no model_type
        detail = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise UserError(f"{hf_dir} is not a transformers model dir ({detail})") from None
    arch = architecture_named(hf_config.model_type, str(hf_dir))
    fields = arch.model_config(hf_config, str(hf_dir))
    classifier = any(name.endswith("ForSequenceClassification") for name in hf_config.architectures or [])
    auto = transformers.AutoModelForSequenceClassification if classifier else transformers.AutoModelForCausalLM
    hf_model = auto.from_pretrained(hf_dir, local_files_only=True, dtype=torch.float32)

    cfg = ModelConfig(vocab_size=hf_config.vocab_size, tie_weights=hf_config.tie_word_embeddings, **fields)
    state = from_hf(hf_model.state_dict(), arch.rules(cfg, classifier), str(hf_dir))
    bias = arch.bias_of(hf_config)
    if bias is None:  # biases always present (GPT-2): a model whose biases are all zero needs none
        bias = any(t.any() for name, t in state.items() if name.endswith(".bias"))
    if not bias:
        state = without_biases(state, str(hf_dir))
    cfg = replace(cfg, bias=bias)
    if tokenizer.vocab_size > cfg.vocab_size:
        raise UserError(f"{hf_dir / 'tokenizer.model'} has {tokenizer.vocab_size} ids, the model only "
                        f"{cfg.vocab_size}: they do not belong together")
    labels = None
    if classifier:
        labels = [hf_config.id2label[i] for i in range(hf_config.num_labels)]
        model = MiniLMForSequenceClassification(cfg, len(labels))
        # HF classifiers have no LM head; ours keeps one (tied: it is the embedding anyway).
        state.setdefault("lm_head.weight", state["body.token_embedding.weight"].clone())
    else:
        model = MiniLM(cfg)
    load_weights_into(model, state, hf_dir)
    write_checkpoint(out, model, tokenizer, labels, note=f"imported from {hf_dir}")
    return f"{arch.name} {'classifier' if classifier else 'language model'}"
