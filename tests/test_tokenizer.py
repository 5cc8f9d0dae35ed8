"""Tokenizer: exact round trips for any Unicode, fixed special ids, deterministic training."""

import re
from pathlib import Path

import pytest
import torch

from minilm.common.errors import UserError
from minilm.text.tokenizer import MIN_VOCAB_SIZE, Tokenizer

CORPUS = Path(__file__).parent / "fixtures" / "tiny_corpus.txt"  # 732 short English sentences

SAMPLES = [
    "The waiter praised the superb soup.",
    "你好，世界！今天天气很好。",  # no Chinese in the corpus: byte fallback spells it
    "party time 🎉😀 👍🏽 done",
    "café naïve Ångström señor Straße",
    "  two  spaces,\ttabs\tand\nnewlines  ",
]


@pytest.fixture(scope="module")
def tok(tmp_path_factory) -> Tokenizer:
    return Tokenizer.train(CORPUS, tmp_path_factory.mktemp("tok") / "tokenizer.model", vocab_size=400)


@pytest.mark.parametrize("text", SAMPLES)
def test_round_trip_is_exact_without_unk(tok, text):
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    assert tok.unk_id not in ids
    assert all(0 <= i < tok.vocab_size for i in ids)


def test_special_ids_are_fixed_and_skipped_by_decode(tok):
    assert (tok.pad_id, tok.unk_id, tok.bos_id, tok.eos_id) == (0, 1, 2, 3)
    assert [tok.id_to_piece(i) for i in range(4)] == ["<pad>", "<unk>", "<s>", "</s>"]
    text = "The old chef cooked."
    ids = tok.encode(text, bos=True, eos=True)
    assert ids[0] == tok.bos_id and ids[-1] == tok.eos_id
    assert ids[1:-1] == tok.encode(text)
    assert tok.decode(ids + [tok.pad_id] * 3) == text


def test_batch_encode_decode_match_single_and_accept_tensors(tok):
    batch = tok.encode_batch(SAMPLES, bos=True)
    assert batch == [tok.encode(text, bos=True) for text in SAMPLES]
    assert tok.decode(torch.tensor(batch[0])) == SAMPLES[0]
    padded = torch.tensor([ids + [tok.pad_id] * (64 - len(ids)) for ids in batch[:2]])  # (2, 64)
    assert tok.decode_batch(padded) == SAMPLES[:2]


@pytest.mark.parametrize("model_type, vocab_size", [("bpe", 400), ("unigram", 320)])
def test_vocab_size_is_exact(tmp_path, model_type, vocab_size):
    tok = Tokenizer.train(CORPUS, tmp_path / "t.model", vocab_size, model_type)
    assert tok.vocab_size == vocab_size
    assert tok.decode(tok.encode(SAMPLES[2])) == SAMPLES[2]


def test_training_is_deterministic(tmp_path, tok):
    again = Tokenizer.train(CORPUS, tmp_path / "again.model", vocab_size=400)
    assert again.fingerprint == tok.fingerprint
    other = Tokenizer.train(CORPUS, tmp_path / "other.model", vocab_size=380)
    assert other.fingerprint != tok.fingerprint


def test_save_and_load_keep_identity(tmp_path, tok):
    tok.save(tmp_path / "sub" / "copy.model")
    loaded = Tokenizer.load(tmp_path / "sub" / "copy.model")
    assert loaded.fingerprint == tok.fingerprint
    assert loaded.encode(SAMPLES[1]) == tok.encode(SAMPLES[1])
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["copy.model"]  # no temporary left


def test_vocab_below_byte_fallback_minimum_names_it(tmp_path):
    with pytest.raises(UserError, match=f"at least {MIN_VOCAB_SIZE}"):
        Tokenizer.train(CORPUS, tmp_path / "t.model", vocab_size=100)


def test_vocab_below_corpus_characters_names_a_minimum_that_works(tmp_path):
    # 270 covers bytes and specials but not the ~40 distinct characters of the corpus.
    with pytest.raises(UserError, match="too small for this corpus") as err:
        Tokenizer.train(CORPUS, tmp_path / "t.model", vocab_size=270)
    minimum = int(re.search(r"at least (\d+)", str(err.value)).group(1))
    assert Tokenizer.train(CORPUS, tmp_path / "t.model", vocab_size=minimum).vocab_size == minimum


def test_vocab_too_large_for_corpus_names_the_maximum(tmp_path):
    with pytest.raises(UserError, match=r"at most \d+ pieces"):
        Tokenizer.train(CORPUS, tmp_path / "t.model", vocab_size=50_000)


def test_bad_model_type_and_empty_corpus_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="'bpe' or 'unigram'"):
        Tokenizer.train(CORPUS, tmp_path / "t.model", 400, model_type="wordpiece")
    (tmp_path / "empty.txt").write_text("\n\n")
    with pytest.raises(UserError, match="no documents"):
        Tokenizer.train(tmp_path / "empty.txt", tmp_path / "t.model", 400)


def test_load_missing_or_foreign_file_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="not found"):
        Tokenizer.load(tmp_path / "nope.model")
    (tmp_path / "fake.model").write_text("this is not a sentencepiece model")
    with pytest.raises(UserError, match="not a SentencePiece model"):
        Tokenizer.load(tmp_path / "fake.model")
