"""minilm against an outside oracle: the same weights run by Hugging Face transformers.

For each architecture minilm exports to (GPT-2, GPT-NeoX, Llama; with and without biases and
tied embeddings), small random models made here must give the same logits (<= 1e-4 in fp32, on
right-padded batches), the same 32 greedy tokens, the same tokenizer ids, and come back from
export -> import bit for bit.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from minilm import MiniLM, MiniLMForSequenceClassification, ModelConfig
from minilm.interop.hf_export import export_hf
from minilm.interop.hf_import import import_hf
from minilm.interop.pretrained import write_checkpoint
from minilm.text.tokenizer import Tokenizer

transformers = pytest.importorskip("transformers")
CORPUS = Path(__file__).parent / "fixtures" / "tiny_corpus.txt"

SHAPES = {  # name -> ModelConfig settings; the name's first word is the architecture expected
    "gpt2": dict(pos_encoding="learned"),
    "gpt2-nobias-untied": dict(pos_encoding="learned", bias=False, tie_weights=False),
    "neox": dict(),  # minilm's defaults
    "neox-nobias": dict(bias=False),
    "llama": dict(norm="rmsnorm", activation="swiglu", bias=False),
    "llama-bias-untied": dict(norm="rmsnorm", activation="swiglu", bias=True, tie_weights=False),
}
LABELS = ["negative", "neutral", "positive"]
SAMPLE = "  Two  spaces lead,\n\ttabs\tand\n\nnewlines; 你好，世界！ emoji 😀🎉 trailing  "


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory) -> Tokenizer:
    return Tokenizer.train(CORPUS, tmp_path_factory.mktemp("tok") / "tokenizer.model", vocab_size=300)


def random_model(shape: str, classifier: bool, seed: int = 0):
    """A 2-layer model whose every parameter is random (zero biases would hide mapping mistakes)."""
    cfg = ModelConfig(vocab_size=300, context_length=48, n_layer=2, n_head=2, d_model=32, **SHAPES[shape])
    torch.manual_seed(seed)
    model = MiniLMForSequenceClassification(cfg, len(LABELS)) if classifier else MiniLM(cfg)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.3)
    return model.eval()


def exported(tmp_path: Path, tokenizer: Tokenizer, shape: str, classifier: bool):
    """(minilm model, its checkpoint dir, the HF dir it was exported to)."""
    model = random_model(shape, classifier)
    ckpt, hf_dir = tmp_path / "ckpt", tmp_path / "hf"
    write_checkpoint(ckpt, model, tokenizer, LABELS if classifier else None)
    arch = export_hf(ckpt, hf_dir)
    assert arch.model_type == {"gpt2": "gpt2", "neox": "gpt_neox", "llama": "llama"}[shape.split("-")[0]]
    return model, ckpt, hf_dir


def right_padded_batch(seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """ids (3, 20) of real tokens 4.. (never pad 0), rows of length 20, 13 and 5, then padding 0."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(4, 300, (3, 20), generator=g)
    mask = (torch.arange(20)[None, :] < torch.tensor([[20], [13], [5]])).long()
    return ids * mask, mask


@pytest.mark.parametrize("shape", SHAPES)
def test_language_model_logits_and_greedy_tokens_match_transformers(tmp_path, tokenizer, shape):
    model, _, hf_dir = exported(tmp_path, tokenizer, shape, classifier=False)
    hf = transformers.AutoModelForCausalLM.from_pretrained(hf_dir, local_files_only=True).eval()
    ids, mask = right_padded_batch()
    with torch.no_grad():
        ours = model(ids)[0]
        theirs = hf(input_ids=ids, attention_mask=mask).logits
    real = mask.bool()  # causal: padding after a token never changes it, so compare real positions
    assert (ours[real] - theirs[real]).abs().max().item() <= 1e-4

    prompt = ids[:2, :8]
    ours_tokens = model.generate(prompt, max_new_tokens=32, temperature=0)
    theirs_tokens = hf.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=32,
                                min_new_tokens=32, do_sample=False, eos_token_id=None)
    assert torch.equal(ours_tokens, theirs_tokens)


@pytest.mark.parametrize("shape", SHAPES)
def test_classifier_logits_match_transformers_on_a_right_padded_batch(tmp_path, tokenizer, shape):
    model, _, hf_dir = exported(tmp_path, tokenizer, shape, classifier=True)
    hf = transformers.AutoModelForSequenceClassification.from_pretrained(hf_dir, local_files_only=True).eval()
    assert hf.config.id2label == dict(enumerate(LABELS)) and hf.config.pad_token_id == 0
    ids, mask = right_padded_batch()
    with torch.no_grad():
        ours = model(ids, mask)[0]
        theirs = hf(input_ids=ids, attention_mask=mask).logits
    assert (ours - theirs).abs().max().item() <= 1e-4


@pytest.mark.parametrize("classifier", [False, True], ids=["lm", "classifier"])
@pytest.mark.parametrize("shape", SHAPES)
def test_export_then_import_gives_back_the_same_weights_bit_for_bit(tmp_path, tokenizer, shape, classifier):
    if classifier and not random_model(shape, True).cfg.tie_weights:
        pytest.skip("a classifier's untied LM head is not part of the HF classifier (documented)")
    model, ckpt, hf_dir = exported(tmp_path, tokenizer, shape, classifier)
    import_hf(hf_dir, tmp_path / "back")
    before = torch.load(ckpt / "model.pt", weights_only=True)
    after = torch.load(tmp_path / "back" / "model.pt", weights_only=True)
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    back = (MiniLMForSequenceClassification if classifier else MiniLM).from_pretrained(tmp_path / "back")
    assert back.cfg == model.cfg


def test_auto_tokenizer_gives_minilm_ids_on_chinese_emoji_spaces_and_newlines(tmp_path, tokenizer):
    _, _, lm_dir = exported(tmp_path / "lm", tokenizer, "neox", classifier=False)
    _, _, clf_dir = exported(tmp_path / "clf", tokenizer, "neox", classifier=True)
    texts = [SAMPLE, " ", "", "x", "\n lead", "end  "]
    lm_tok = transformers.AutoTokenizer.from_pretrained(lm_dir, local_files_only=True)
    clf_tok = transformers.AutoTokenizer.from_pretrained(clf_dir, local_files_only=True)
    for text in texts:
        ids = tokenizer.encode(text)
        assert lm_tok(text)["input_ids"] == ids, repr(text)
        assert lm_tok.decode(ids) == tokenizer.decode(ids) == text
        assert clf_tok(text)["input_ids"] == [Tokenizer.bos_id, *ids, Tokenizer.eos_id]  # as encode_texts frames
    assert (lm_tok.pad_token_id, lm_tok.unk_token_id, lm_tok.bos_token_id, lm_tok.eos_token_id) == (0, 1, 2, 3)
