"""Data: corpus reading, the token cache, LM batches, labeled files, and the prepare scripts."""

import gzip
import importlib
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from minilm.common.errors import UserError
from minilm.text.corpus import iter_documents
from minilm.text.labeled import (
    LabelMap,
    classification_batches,
    encode_texts,
    holdout_split,
    pad_batch,
    read_labeled,
    write_labeled_tsv,
)
from minilm.text.lm_data import (
    LMBatcher,
    build_token_cache,
    fixed_batches,
    is_val_document,
    unigram_cross_entropy,
)
from minilm.text.tokenizer import Tokenizer

FIXTURES = Path(__file__).parent / "fixtures"
CORPUS = FIXTURES / "tiny_corpus.txt"  # 732 short English sentences
DATA_SCRIPTS = Path(__file__).parent.parent / "data"


@pytest.fixture(scope="module")
def tok(tmp_path_factory) -> Tokenizer:
    return Tokenizer.train(CORPUS, tmp_path_factory.mktemp("tok") / "tokenizer.model", vocab_size=400)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# -- iter_documents -----------------------------------------------------------------------------


def test_txt_documents_are_stripped_nonblank_lines(tmp_path):
    path = write(tmp_path / "c.txt", "first doc \n\n   \n\tsecond doc\r\nthird")
    assert list(iter_documents(path)) == ["first doc", "second doc", "third"]


def test_folder_reads_txt_files_recursively_in_sorted_order(tmp_path):
    write(tmp_path / "b.txt", "from b")
    write(tmp_path / "a" / "z.txt", "from a/z")
    write(tmp_path / "a" / "notes.md", "not a corpus file")
    assert list(iter_documents(tmp_path)) == ["from a/z", "from b"]


def test_jsonl_documents_and_bad_lines_name_the_line(tmp_path):
    good = write(tmp_path / "good.jsonl", '{"text": "one"}\n\n{"text": "two", "id": 7}\n')
    assert list(iter_documents(good)) == ["one", "two"]
    not_json = write(tmp_path / "bad.jsonl", '{"text": "one"}\n{text: two}\n')
    with pytest.raises(UserError, match=r"bad\.jsonl:2: not valid JSON"):
        list(iter_documents(not_json))
    no_text = write(tmp_path / "notext.jsonl", '{"text": "one"}\n{"body": "two"}\n')
    with pytest.raises(UserError, match=r"notext\.jsonl:2: no \"text\""):
        list(iter_documents(no_text))


@pytest.mark.parametrize("content", ["", "\n  \n\t\n"])
def test_empty_corpus_is_a_user_error(tmp_path, content):
    with pytest.raises(UserError, match="no documents"):
        list(iter_documents(write(tmp_path / "c.txt", content)))


def test_missing_path_and_empty_folder_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="not found"):
        list(iter_documents(tmp_path / "missing.txt"))
    with pytest.raises(UserError, match="no .txt files"):
        list(iter_documents(tmp_path))


def test_bad_utf8_is_replaced_with_one_warning(tmp_path, capsys):
    path = tmp_path / "latin1.txt"
    path.write_bytes("café\nfine\nnaïve\n".encode("latin-1"))
    assert list(iter_documents(path)) == ["caf\ufffd", "fine", "na\ufffdve"]
    err = capsys.readouterr().err
    assert err.count("warning") == 1 and "latin1.txt: 2 lines" in err


# -- token cache --------------------------------------------------------------------------------


def test_cache_splits_by_document_deterministically(tmp_path, tok):
    cache = build_token_cache(CORPUS, tok, tmp_path / "cache", val_fraction=0.1)
    docs = list(iter_documents(CORPUS))
    framed = tok.encode_batch(docs, bos=True, eos=True)
    val = [ids for i, ids in enumerate(framed) if is_val_document(i, 0.1)]
    train = [ids for i, ids in enumerate(framed) if not is_val_document(i, 0.1)]
    assert cache.val.tolist() == [t for ids in val for t in ids]
    assert cache.train.tolist() == [t for ids in train for t in ids]
    assert cache.meta["val_documents"] == len(val) == 74  # ceil(732 * 0.1)
    assert cache.meta["train_documents"] == len(train)
    assert cache.meta["train_tokens"] == len(cache.train)
    assert cache.meta["tokenizer"] == tok.fingerprint
    assert cache.train.dtype == np.uint16 and not cache.reused
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["meta.json", "train.bin", "val.bin"]


def test_cache_is_reused_then_rebuilt_when_source_or_tokenizer_changes(tmp_path, tok):
    corpus = write(tmp_path / "c.txt", CORPUS.read_text())
    assert not build_token_cache(corpus, tok, tmp_path / "cache").reused
    again = build_token_cache(corpus, tok, tmp_path / "cache")
    assert again.reused and again.meta["train_tokens"] == len(again.train)

    write(corpus, CORPUS.read_text() + "A new guest ordered the lovely soup.\n")
    changed = build_token_cache(corpus, tok, tmp_path / "cache")
    assert not changed.reused and changed.meta["train_documents"] + changed.meta["val_documents"] == 733

    other_tok = Tokenizer.train(CORPUS, tmp_path / "other.model", vocab_size=350)
    rebuilt = build_token_cache(corpus, other_tok, tmp_path / "cache")
    assert not rebuilt.reused and rebuilt.meta["tokenizer"] == other_tok.fingerprint


def test_cache_rejects_bad_split_settings(tmp_path, tok):
    with pytest.raises(UserError, match="between 0 and 1"):
        build_token_cache(CORPUS, tok, tmp_path / "cache", val_fraction=0.0)
    one_doc = write(tmp_path / "one.txt", "only one document here\n")
    with pytest.raises(UserError, match="only 1 document"):
        build_token_cache(one_doc, tok, tmp_path / "cache")
    assert not (tmp_path / "cache" / "meta.json").exists()
    assert not list((tmp_path / "cache").glob("*.tmp*"))


# -- LM batches ---------------------------------------------------------------------------------

TOKENS = np.arange(1000, dtype=np.uint16)  # token i sits at position i: windows are easy to check


def test_batches_are_shifted_windows():
    x, y = LMBatcher(TOKENS, context_length=16, batch_size=4, seed=0).next_batch()
    assert x.shape == y.shape == (4, 16) and x.dtype == y.dtype == torch.int64
    assert torch.equal(y, x + 1)  # y[:, t] is the token after x[:, t]
    assert torch.equal(x[:, 1:], x[:, :-1] + 1)  # each row is one contiguous window


def test_batches_are_deterministic_by_seed():
    first = [LMBatcher(TOKENS, 16, 4, seed=1).next_batch()[0] for _ in range(2)]
    assert torch.equal(first[0], first[1])
    assert not torch.equal(first[0], LMBatcher(TOKENS, 16, 4, seed=2).next_batch()[0])


def test_resume_from_state_dict_gives_the_same_next_batches():
    run = LMBatcher(TOKENS, 16, 4, seed=3)
    for _ in range(3):
        run.next_batch()
    state = run.state_dict()
    expected = [run.next_batch()[0] for _ in range(2)]
    resumed = LMBatcher(TOKENS, 16, 4, seed=99)
    resumed.load_state_dict(state)
    assert all(torch.equal(resumed.next_batch()[0], x) for x in expected)


def test_ranks_split_the_single_process_batch():
    single = LMBatcher(TOKENS, 16, batch_size=8, seed=4).next_batch()[0]
    ranks = [
        LMBatcher(TOKENS, 16, batch_size=4, seed=4, rank=r, world_size=2).next_batch()[0] for r in (0, 1)
    ]
    assert torch.equal(torch.cat(ranks), single)
    assert not torch.equal(ranks[0], ranks[1])


def test_too_few_tokens_says_how_many():
    with pytest.raises(
        UserError, match=r"val split has 10 tokens.*context_length \+ 1 = 17.*--context-length"
    ):
        fixed_batches(TOKENS[:10], context_length=16, batch_size=2, n_batches=1)
    x, _ = LMBatcher(TOKENS[:17], context_length=16, batch_size=2, seed=0).next_batch()
    assert x[:, 0].tolist() == [0, 0]  # exactly one window fits


def test_fixed_batches_are_the_same_every_call():
    a, b = (fixed_batches(TOKENS, 16, 4, n_batches=3, seed=0) for _ in range(2))
    assert len(a) == 3
    for (xa, ya), (xb, yb) in zip(a, b, strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_unigram_cross_entropy():
    vocab = 8
    uniform = np.tile(np.arange(vocab), 10)
    assert unigram_cross_entropy(uniform, uniform, vocab) == pytest.approx(np.log(vocab))
    skewed = np.array([0] * 90 + [1] * 10)
    assert unigram_cross_entropy(skewed, skewed, vocab) < 0.5 * np.log(vocab)


# -- labeled files ------------------------------------------------------------------------------


def test_read_csv_tsv_jsonl(tmp_path):
    csv_path = write(tmp_path / "a.csv", 'text,label\n"Good, really good",1\nBad,0\n')
    assert read_labeled(csv_path) == (["Good, really good", "Bad"], ["1", "0"])
    tsv_path = write(tmp_path / "a.tsv", 'sentence\tlabel\tid\nhe said "wow\tpos\t1\nmeh\tneg\t2\n')
    assert read_labeled(tsv_path) == (['he said "wow', "meh"], ["pos", "neg"])  # '"' is not quoting
    jsonl_path = write(
        tmp_path / "a.jsonl", '{"review": "fine", "stars": 4}\n{"review": "poor", "stars": 1}\n'
    )
    assert read_labeled(jsonl_path, text_column="review", label_column="stars") == (
        ["fine", "poor"],
        ["4", "1"],
    )


@pytest.mark.parametrize(
    "name, content, kwargs, message",
    [
        ("empty.csv", "", {}, "no data rows"),
        ("header.csv", "text,label\n", {}, "no data rows"),
        (
            "nolabel.csv",
            "text,stars\nok,1\n",
            {},
            r"no label column 'label'; columns are \['text', 'stars'\]",
        ),
        (
            "notext.tsv",
            "body\tlabel\nok\t1\n",
            {},
            r"no text column 'text' or 'sentence'; columns are \['body'",
        ),
        ("named.csv", "text,label\nok,1\n", {"text_column": "review"}, r"no text column 'review'"),
        (
            "ragged.tsv",
            "text\tlabel\nok\t1\nstray\ttab\t1\n",
            {},
            r"ragged\.tsv:3: 3 fields, but the header has 2",
        ),
        ("blank.csv", "text,label\nok,1\n ,0\n", {}, r"blank\.csv:3: empty or missing 'text'"),
        (
            "nolab.jsonl",
            '{"text": "a", "label": 1}\n{"text": "b"}\n',
            {},
            r"nolab\.jsonl:2: empty or missing 'label'",
        ),
        ("bad.jsonl", '{"text": "a", "label": 1}\nnope\n', {}, r"bad\.jsonl:2: not valid JSON"),
        ("data.xlsx", "whatever", {}, "unknown file type '.xlsx'"),
    ],
)
def test_labeled_file_errors_name_the_problem(tmp_path, name, content, kwargs, message):
    with pytest.raises(UserError, match=message):
        read_labeled(write(tmp_path / name, content), **kwargs)


def test_missing_labeled_file(tmp_path):
    with pytest.raises(UserError, match="not found"):
        read_labeled(tmp_path / "train.tsv")


def test_written_tsv_reads_back(tmp_path):
    write_labeled_tsv(tmp_path / "t.tsv", ['a "quoted"\ttext\nover lines', "b"], ["pos", "neg"])
    assert read_labeled(tmp_path / "t.tsv") == (['a "quoted" text over lines', "b"], ["pos", "neg"])


def test_holdout_split_is_disjoint_and_deterministic():
    keep, held = holdout_split(100, 10, seed=0)
    assert len(held) == 10 and sorted(keep + held) == list(range(100))
    assert holdout_split(100, 10, seed=0) == (keep, held) != holdout_split(100, 10, seed=1)


def test_label_map_orders_and_rejects_unseen_labels(tmp_path):
    assert LabelMap.from_labels(["10", "2", "1", "2"]).names == ["1", "2", "10"]  # numeric order
    labels = LabelMap.from_labels(["pos", "neg", "neutral", "pos"])
    assert labels.names == ["neg", "neutral", "pos"] and len(labels) == 3
    assert labels.encode(["pos", "neg"]) == [2, 0] and labels.decode([2, 0]) == ["pos", "neg"]
    with pytest.raises(UserError, match=r"valid set has labels \['mixed'\]"):
        labels.encode(["pos", "mixed"], split_name="valid")
    labels.save(tmp_path / "labels.json")
    assert json.loads((tmp_path / "labels.json").read_text()) == {"labels": ["neg", "neutral", "pos"]}
    assert LabelMap.load(tmp_path / "labels.json").names == labels.names
    with pytest.raises(UserError, match="not found"):
        LabelMap.load(tmp_path / "missing.json")


def test_encode_texts_frames_and_truncates(tok):
    long_text = " ".join(["The waiter praised the quiet soup."] * 20)
    seqs, n_truncated = encode_texts(tok, ["Bad soup.", long_text], max_length=16)
    assert n_truncated == 1
    assert seqs[0] == [tok.bos_id, *tok.encode("Bad soup."), tok.eos_id]
    assert len(seqs[1]) == 16 and seqs[1][-1] == tok.eos_id
    assert seqs[1][1:-1] == tok.encode(long_text)[:14]  # the first tokens are kept


def test_pad_batch_pads_right_with_a_mask():
    input_ids, mask = pad_batch([[5, 6, 7], [8]], pad_id=0)
    assert input_ids.tolist() == [[5, 6, 7], [8, 0, 0]] and input_ids.dtype == torch.int64
    assert mask.tolist() == [[1, 1, 1], [1, 0, 0]] and mask.dtype == torch.int64


def test_classification_batches_cover_every_example_once_per_epoch():
    seqs = [[i + 4] * (i % 3 + 1) for i in range(10)]
    labels = list(range(10))

    def epoch_labels(epoch, **kw):
        batches = classification_batches(
            seqs, labels, batch_size=4, pad_id=0, shuffle=True, epoch=epoch, **kw
        )
        return [y.tolist() for _, _, y in batches]

    first = epoch_labels(0)
    assert [len(b) for b in first] == [4, 4, 2] and sorted(sum(first, [])) == labels
    assert epoch_labels(0) == first and epoch_labels(1) != first
    ranks = [sum(epoch_labels(0, rank=r, world_size=3), []) for r in range(3)]
    assert len(set(sum(ranks, []))) == 9 and all(len(r) == 3 for r in ranks)  # 10 % 3 dropped
    input_ids, mask, y = next(classification_batches(seqs, labels, 10, pad_id=0))
    assert torch.equal(input_ids[mask == 1], torch.tensor([t for s in seqs for t in s]))


# -- prepare scripts (parse functions only: the tests never download) ---------------------------


@pytest.fixture
def scripts(monkeypatch):
    """Import data/prepare_*.py like `python data/prepare_x.py` would (data/ on sys.path)."""
    monkeypatch.syspath_prepend(str(DATA_SCRIPTS))
    return importlib.import_module


def test_tinystories_parse_and_write(tmp_path, scripts):
    prep = scripts("prepare_tinystories")
    lines = io.StringIO("Once upon a time.\n\nThe end.\n<|endoftext|>\nTom ran.\n<|endoftext|>\nLast one\n")
    stories = list(prep.parse_stories(lines))
    assert stories == ["Once upon a time. The end.", "Tom ran.", "Last one"]
    assert prep.write_stories(iter(stories), tmp_path / "ts.txt", limit=2) == (2, 34)
    assert list(iter_documents(tmp_path / "ts.txt")) == stories[:2]


def test_sst2_convert(tmp_path, scripts):
    prep = scripts("prepare_sst2")
    rows = "".join(f"phrase number {i}\t{i % 2}\n" for i in range(20))
    write(tmp_path / "SST-2" / "train.tsv", "sentence\tlabel\n" + rows)
    write(tmp_path / "SST-2" / "dev.tsv", 'sentence\tlabel\nit \'s "great"\t1\ndull\t0\n')
    counts = prep.convert(tmp_path / "SST-2", tmp_path / "out", valid_size=5, seed=0)
    assert counts == {"train": 15, "valid": 5, "test": 2}
    assert read_labeled(tmp_path / "out" / "test.tsv") == (
        ['it \'s "great"', "dull"],
        ["positive", "negative"],
    )
    train_texts, _ = read_labeled(tmp_path / "out" / "train.tsv")
    valid_texts, _ = read_labeled(tmp_path / "out" / "valid.tsv")
    assert not set(train_texts) & set(valid_texts)


def acl_files():
    """A miniature aclImdb tree: (path, text) of a few reviews and the files to skip."""
    return {
        "aclImdb/README": "readme",
        "aclImdb/imdbEr.txt": "0.1\n",
        "aclImdb/train/urls_pos.txt": "http://example.com\n",
        "aclImdb/train/pos/0_9.txt": "Great<br /><br />film.",
        "aclImdb/train/pos/1_8.txt": "Loved   it.",
        "aclImdb/train/neg/0_2.txt": "Dull\tand long.",
        "aclImdb/train/neg/1_1.txt": "Awful.",
        "aclImdb/train/unsup/0_0.txt": "Saw it on TV.",
        "aclImdb/test/pos/0_10.txt": "Superb.",
        "aclImdb/test/neg/0_3.txt": "Meh.",
    }


def test_imdb_tarball_and_folder_read_the_same(tmp_path, scripts):
    prep = scripts("prepare_imdb")
    archive = tmp_path / "aclImdb_v1.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, text in acl_files().items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
            write(tmp_path / "extracted" / name, text)
    from_tar = prep.sort_acl_reviews(prep.tar_files(archive))
    labeled, unlabeled = from_tar
    assert labeled["train"] == [
        ("Dull and long.", "negative"),
        ("Awful.", "negative"),
        ("Great film.", "positive"),
        ("Loved it.", "positive"),
    ]
    assert labeled["test"] == [("Meh.", "negative"), ("Superb.", "positive")] and unlabeled == [
        "Saw it on TV."
    ]
    assert prep.read_local(tmp_path / "extracted") == from_tar

    counts = prep.write_outputs(labeled, unlabeled, tmp_path / "out", valid_size=1, seed=0)
    assert counts == {"unsup": 1, "train": 3, "valid": 1, "test": 2}
    # --few-labels 2 of 4 training reviews (2 of each label): one of each
    counts = prep.write_outputs(labeled, unlabeled, tmp_path / "few", valid_size=0, seed=0, few_labels=2)
    assert counts["train_2"] == 2
    few_texts, few_labels = read_labeled(tmp_path / "few" / "train_2.tsv")
    assert sorted(few_labels) == ["negative", "positive"] and set(few_texts) <= {text for text, _ in labeled["train"]}
    assert list(iter_documents(tmp_path / "out" / "unsup.txt")) == unlabeled
    assert read_labeled(tmp_path / "out" / "test.tsv") == (["Meh.", "Superb."], ["negative", "positive"])


def test_imdb_converted_local_copy(tmp_path, scripts):
    prep = scripts("prepare_imdb")
    for split in ("train", "test"):
        with gzip.open(tmp_path / f"{split}.tsv.gz", "wt", encoding="utf-8") as f:
            f.write('text\tlabel\nA "fine" film.<br />Yes.\tpos\nBad.\tneg\n')
    with gzip.open(tmp_path / "unsup.txt.gz", "wt", encoding="utf-8") as f:
        f.write("One.\n\nTwo.\n")
    labeled, unlabeled = prep.read_local(tmp_path)
    assert labeled["test"] == [('A "fine" film. Yes.', "positive"), ("Bad.", "negative")]
    assert unlabeled == ["One.", "Two."]
