"""A minilm checkpoint dir -> a Hugging Face dir that transformers loads with no custom code.

    OUT/config.json                  model_type, architectures, sizes, pad/bos/eos ids, id2label, ...
    OUT/model.safetensors            the weights, renamed and reshaped by the architecture's rules
    OUT/tokenizer.json (+ config)    the same ids as minilm's tokenizer (minilm/interop/hf_tokenizer.py)
    OUT/tokenizer.model              the SentencePiece file itself
A language model becomes *ForCausalLM, a fine-tuned dir *ForSequenceClassification (its LM head
stays behind: with tied weights, the default, that is no loss; an untied one is not exported).
transformers writes the files itself, so the tensor names are the ones its version expects.
"""

from __future__ import annotations

from pathlib import Path

import torch

from minilm.checkpoint import load_classifier, load_lm, read_config
from minilm.interop.hf_choose import architecture_for
from minilm.interop.hf_tokenizer import save_hf_tokenizer
from minilm.interop.hf_weights import Architecture, common_config, to_hf
from minilm.model.config import ModelConfig


def import_transformers():
    try:
        import transformers
    except ImportError:
        from minilm.common.errors import UserError
        raise UserError("this needs transformers and safetensors: pip install 'minilm[hf]'") from None
    return transformers


def empty_hf_model(arch: Architecture, cfg: ModelConfig, labels: list[str] | None):
    """A randomly initialised transformers model of the architecture and minilm model's shape."""
    transformers = import_transformers()
    fields = {**common_config(cfg), **arch.hf_config(cfg)}
    if labels is not None:
        fields.update(id2label=dict(enumerate(labels)), label2id={name: i for i, name in enumerate(labels)})
    hf_config = transformers.AutoConfig.for_model(arch.model_type, **fields)
    auto = transformers.AutoModelForSequenceClassification if labels else transformers.AutoModelForCausalLM
    return auto.from_config(hf_config).eval()


def export_hf(ckpt_dir: str | Path, out: Path) -> Architecture:
    """Write the HF dir; returns the architecture chosen. Refuses (UserError) before writing anything."""
    ckpt_dir = Path(ckpt_dir)
    config = read_config(ckpt_dir)
    classifier = config.get("classifier") if config.get("kind") == "finetune" else None
    cfg = ModelConfig.from_dict(config["model"])
    arch = architecture_for(cfg, classifier)
    import_transformers()
    cpu = torch.device("cpu")
    if classifier is not None:
        model, _, label_map = load_classifier(ckpt_dir, cpu)
        labels = label_map.names
    else:
        (model, _), labels = load_lm(ckpt_dir, cpu), None
    hf_model = empty_hf_model(arch, cfg, labels)
    hf_state = to_hf(model.state_dict(), arch.rules(cfg, classifier is not None), set(hf_model.state_dict()))
    hf_model.load_state_dict(hf_state, strict=True)
    out.mkdir(parents=True, exist_ok=True)
    hf_model.save_pretrained(out)
    save_hf_tokenizer(ckpt_dir / "tokenizer.model", out, cfg.context_length, framed=classifier is not None)
    return arch
