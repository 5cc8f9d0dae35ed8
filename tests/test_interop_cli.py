"""The export command: ONNX Runtime against PyTorch, the one-line refusals, and the Python API."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from minilm import MiniLM, MiniLMForSequenceClassification, ModelConfig
from minilm.interop.export import cli
from minilm.interop.pretrained import write_checkpoint
from minilm.text.tokenizer import Tokenizer

CORPUS = Path(__file__).parent / "fixtures" / "tiny_corpus.txt"
LABELS = ["neg", "pos"]


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory) -> Tokenizer:
    return Tokenizer.train(CORPUS, tmp_path_factory.mktemp("tok") / "tokenizer.model", vocab_size=300)


def checkpoint(path: Path, tokenizer: Tokenizer, classifier: bool, pooling: str = "last", head_bias: bool = False,
               window_stride: int = 0, **shape) -> Path:
    cfg = ModelConfig(vocab_size=300, context_length=32, n_layer=1, n_head=2, d_model=32, **shape)
    torch.manual_seed(0)
    model = MiniLMForSequenceClassification(cfg, 2, pooling, head_bias=head_bias, window_stride=window_stride) \
        if classifier else MiniLM(cfg)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.3)
    write_checkpoint(path, model, tokenizer, LABELS if classifier else None)
    return path


@pytest.mark.parametrize("classifier,pooling", [(False, "last"), (True, "last"), (True, "mean")],
                         ids=["lm-logits", "classifier-last-token", "classifier-mean-pooled"])
def test_onnx_runtime_matches_pytorch_for_any_batch_and_length(tmp_path, tokenizer, classifier, pooling):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    ckpt = checkpoint(tmp_path / "ckpt", tokenizer, classifier, pooling)
    cli(["--ckpt", str(ckpt), "--to", "onnx", str(tmp_path / "onnx")])
    session = ort.InferenceSession(str(tmp_path / "onnx" / "model.onnx"))
    model = (MiniLMForSequenceClassification if classifier else MiniLM).from_pretrained(ckpt)
    for batch, length in [(1, 3), (4, 17), (2, 32)]:
        ids = torch.randint(4, 300, (batch, length))
        mask = (torch.arange(length)[None, :] < torch.randint(1, length + 1, (batch, 1))).long()
        ids = ids * mask if classifier else ids
        with torch.no_grad():
            expected = torch.softmax(model(ids, mask)[0], -1) if classifier else model(ids)[0]
        feed = {"input_ids": ids.numpy(), **({"attention_mask": mask.numpy()} if classifier else {})}
        got = torch.from_numpy(session.run(None, feed)[0])
        assert got.shape == expected.shape
        assert (got - expected).abs().max().item() <= 1e-4


REFUSALS = {  # what makes a model not exportable -> words the one-line message must contain
    "sinusoidal": (dict(pos_encoding="sinusoidal"), {}, "--pos-encoding learned"),
    "learned+rmsnorm": (dict(pos_encoding="learned", norm="rmsnorm"), {}, "--norm layernorm"),
    "rope+swiglu+layernorm": (dict(activation="swiglu"), {}, "--activation gelu"),
    "mean pooling": ({}, dict(classifier=True, pooling="mean"), "--pooling last"),
    "head bias": ({}, dict(classifier=True, head_bias=True), "--no-head-bias"),
    "qk-norm": (dict(qk_norm=True), {}, "--no-qk-norm"),
    "logit soft-cap": (dict(logit_softcap=15.0), {}, "--logit-softcap 0"),
    "relu2": (dict(activation="relu2"), {}, "--activation gelu"),
    "value embeddings": (dict(value_embeddings=True), {}, "without --value-embeddings"),
}


@pytest.mark.parametrize("case", REFUSALS)
def test_each_unexportable_model_is_refused_with_one_line_naming_the_flags(tmp_path, tokenizer, case, capsys):
    shape, kind, fix = REFUSALS[case]
    ckpt = checkpoint(tmp_path / "ckpt", tokenizer, kind.get("classifier", False),
                      kind.get("pooling", "last"), kind.get("head_bias", False), **shape)
    with pytest.raises(SystemExit) as exit_info:
        cli(["--ckpt", str(ckpt), "--to", "hf", str(tmp_path / "hf")])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.startswith("error: cannot export") and err.count("\n") == 1
    assert fix in err
    assert not (tmp_path / "hf").exists()  # refused before writing anything


def test_exporting_a_windows_classifier_says_the_windows_stay_behind(tmp_path, tokenizer, capsys):
    pytest.importorskip("transformers")
    cli(["--ckpt", str(checkpoint(tmp_path / "ckpt", tokenizer, True, window_stride=24)), "--to", "hf",
         str(tmp_path / "hf")])
    out = capsys.readouterr().out
    assert "windows of 32 tokens, 24 apart" in out and "exported model reads one window" in out
    cli(["--ckpt", str(checkpoint(tmp_path / "plain", tokenizer, True)), "--to", "hf", str(tmp_path / "hf2")])
    assert "note:" not in capsys.readouterr().out  # a truncating classifier: nothing to add


def test_import_refuses_a_dir_without_minilm_tokenizer_and_export_a_non_empty_out(tmp_path, tokenizer, capsys):
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    with pytest.raises(SystemExit):
        cli(["--from-hf", str(tmp_path / "hf"), str(tmp_path / "out")])
    assert "no tokenizer.model" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli(["--ckpt", str(tmp_path), "--to", "hf", str(tmp_path / "hf")])
    assert "not an empty dir" in capsys.readouterr().err


def test_python_api_loads_saves_and_predicts_padding_correctly(tmp_path, tokenizer):
    ckpt = checkpoint(tmp_path / "ckpt", tokenizer, classifier=True)
    clf = MiniLMForSequenceClassification.from_pretrained(ckpt)
    texts = ["a short one", "a much longer review that goes on and on about the film", "x"]
    labels, probs = clf.predict(texts, batch_size=2)
    assert probs.shape == (3, 2) and torch.allclose(probs.sum(1), torch.ones(3))
    alone = torch.cat([clf.predict([t]).probabilities for t in texts])  # no padding at all
    assert (probs - alone).abs().max() < 1e-5
    assert labels == [LABELS[i] for i in probs.argmax(1)]
    clf.save_pretrained(tmp_path / "copy")
    again = MiniLMForSequenceClassification.from_pretrained(tmp_path / "copy")
    assert torch.equal(again.predict(texts, batch_size=2).probabilities, probs)
    # a pretraining dir: the body under a fresh head, labels given
    lm = MiniLM.from_pretrained(checkpoint(tmp_path / "lm", tokenizer, classifier=False))
    assert lm.tokenizer.fingerprint == tokenizer.fingerprint
    fresh = MiniLMForSequenceClassification.from_pretrained(tmp_path / "lm", labels=["a", "b", "c"])
    assert fresh.predict(["hello"]).probabilities.shape == (1, 3)


def test_python_m_minilm_export_is_a_command(tmp_path):
    result = subprocess.run([sys.executable, "-m", "minilm.export", str(tmp_path / "o")], capture_output=True,
                            text=True, cwd=Path(__file__).parent.parent)
    assert result.returncode == 2 and result.stderr.startswith("error: pass either --ckpt")
