"""minilm's SentencePiece tokenizer as a transformers tokenizer (tokenizer.json, no custom code).

transformers converts a tokenizer.model into its fast BPE/unigram form with byte fallback, the
same pieces and the same ids. One difference is fixed here: SentencePiece puts a "▁" (space) in
front of every text (add_dummy_prefix), also in front of leading spaces ("  hi" -> "▁▁▁hi"), while
the converter's Metaspace pre-tokenizer skips that prefix when the text already starts with a
space ("▁▁hi"). Normalizing with Prepend("▁") + Replace(" ", "▁") and no pre-tokenizer does what
SentencePiece does, so the ids agree on every text (tests/test_interop_hf.py tries Chinese, emoji,
leading, repeated and trailing spaces, tabs and newlines). Decoding drops that one prefix space.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from minilm.text.tokenizer import Tokenizer


def save_hf_tokenizer(tokenizer_file: Path, out: Path, max_length: int, framed: bool) -> None:
    """Write tokenizer.json + tokenizer_config.json (and a copy of tokenizer.model) into `out`.

    framed: add <s> before and </s> after each text, as minilm's classifier inputs are framed
    (minilm/text/labeled.py encode_texts), so a transformers pipeline feeds it what it was trained
    on. Unframed (language models), the ids are exactly Tokenizer.encode's.
    """
    from tokenizers import normalizers, processors
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    with tempfile.TemporaryDirectory() as tmp:  # transformers converts from a dir holding tokenizer.model
        shutil.copy(tokenizer_file, Path(tmp) / "tokenizer.model")
        (Path(tmp) / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "LlamaTokenizer"}))
        backend = AutoTokenizer.from_pretrained(tmp).backend_tokenizer
    backend.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    backend.pre_tokenizer = None
    ours = Tokenizer.load(tokenizer_file)
    specials = [ours.id_to_piece(i) for i in (ours.pad_id, ours.unk_id, ours.bos_id, ours.eos_id)]
    bos, eos = (specials[2], ours.bos_id), (specials[3], ours.eos_id)
    backend.post_processor = processors.TemplateProcessing(
        single=f"{bos[0]} $A {eos[0]}", special_tokens=[bos, eos]) if framed else None
    pad, unk = specials[0], specials[1]
    hf = PreTrainedTokenizerFast(tokenizer_object=backend, model_max_length=max_length, pad_token=pad,
                                 unk_token=unk, bos_token=bos[0], eos_token=eos[0])
    hf.save_pretrained(out)
    shutil.copy(tokenizer_file, out / "tokenizer.model")  # for SentencePiece users, and for importing back

