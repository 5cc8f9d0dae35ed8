"""python -m minilm.evaluate: bits per byte as computed by hand, every token scored exactly once."""

import json
import math

import pytest
import torch
import torch.nn.functional as F
from tiny_checkpoint import CORPUS, make_checkpoint

from minilm.checkpoint import load_lm
from minilm.tools.evaluate import cli, evaluate_text, plan_windows

DOCS = CORPUS.read_text().splitlines()[:6]  # ~80 tokens: several windows of 16


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("pretrain"))


@pytest.fixture(scope="module")
def lm(ckpt):
    return load_lm(ckpt, torch.device("cpu"))


def stream_of(tokenizer, docs) -> torch.Tensor:
    return torch.tensor([i for doc in docs for i in tokenizer.encode(doc, bos=True, eos=True)])


def nll_by_hand(model, stream: torch.Tensor, contexts) -> float:
    """Σ over t of -ln P(stream[t] | stream[contexts(t)]), one forward pass per token."""
    total = 0.0
    with torch.no_grad():
        for t in range(1, len(stream)):
            logits, _ = model(stream[contexts(t)][None])  # (1, t', V)
            total -= F.log_softmax(logits[0, -1], dim=-1)[stream[t]].item()
    return total


def non_overlapping(T: int):
    """Token t is predicted in the window that starts at the last multiple of T below it."""
    return lambda t: slice((t - 1) // T * T, t)


def test_bits_per_byte_by_hand_from_the_command_line(ckpt, lm, tmp_path, capsys):
    model, tokenizer = lm
    data = tmp_path / "data.txt"
    data.write_text("\n".join(["café au lait", "naïve 😀 text"]) + "\n")  # multi-byte characters
    stream = stream_of(tokenizer, ["café au lait", "naïve 😀 text"])
    nll = nll_by_hand(model, stream, non_overlapping(model.cfg.context_length))
    n_bytes = len("café au lait".encode()) + 1 + len("naïve 😀 text".encode()) + 1  # + 1 newline per document
    json_path = tmp_path / "results.json"
    # None, as the console script minilm-evaluate needs to exit with 0.
    assert cli(["--ckpt", str(ckpt), "--data", str(data), "--device", "cpu", "--json", str(json_path)]) is None
    out = capsys.readouterr().out
    results = json.loads(json_path.read_text())
    assert results["bytes"] == n_bytes == 14 + 17
    assert results["tokens"] == len(stream) - 1
    assert results["bits_per_byte"] == pytest.approx(nll / math.log(2) / n_bytes, rel=1e-5)
    assert results["perplexity"] == pytest.approx(math.exp(nll / (len(stream) - 1)), rel=1e-5)
    assert f"{results['bits_per_byte']:.4f}" in out and "bits/byte" in out


def test_non_overlapping_windows_by_hand(lm):
    model, tokenizer = lm
    nll = nll_by_hand(model, stream_of(tokenizer, DOCS), non_overlapping(model.cfg.context_length))
    results = evaluate_text(model, tokenizer, DOCS, batch_size=3)  # 3 does not divide the windows: a ragged batch
    assert results["nll_nats"] == pytest.approx(nll, rel=1e-5)


@pytest.mark.parametrize("stride", [1, 5])
def test_sliding_window_by_hand(lm, stride):
    model, tokenizer = lm
    stream, T = stream_of(tokenizer, DOCS[:4]), model.cfg.context_length
    # Token t is scored by the first window (starts 0, S, 2S, ...) that reaches it: start >= t - T.
    nll = nll_by_hand(model, stream, lambda t: slice(max(0, math.ceil((t - T) / stride) * stride), t))
    assert evaluate_text(model, tokenizer, DOCS[:4], stride=stride)["nll_nats"] == pytest.approx(nll, rel=1e-5)


@pytest.mark.parametrize("stride", [None, 1, 5, 15, 16])
@pytest.mark.parametrize("batch_size", [1, 4])
def test_every_token_after_the_first_is_scored_once(lm, stride, batch_size):
    model, tokenizer = lm
    n_tokens = len(stream_of(tokenizer, DOCS))
    results = evaluate_text(model, tokenizer, DOCS, stride=stride, batch_size=batch_size)
    assert results["tokens"] == n_tokens - 1
    windows = plan_windows(n_tokens, 16, stride)
    scored = [t for start, end, n_seen in windows for t in range(start + 1 + n_seen, end + 1)]
    assert scored == list(range(1, n_tokens))


@pytest.mark.parametrize("flags, message", [
    (["--data", "{tmp}/empty.txt"], "has no documents"),
    (["--data", "{tmp}/missing.txt"], "not found"),
    (["--data", "{tmp}/data.txt", "--stride", "0"], "--stride must be between 1 and the context length 16"),
    (["--data", "{tmp}/data.txt", "--stride", "17"], "--stride must be between 1 and the context length 16"),
    (["--data", "{tmp}/data.txt", "--batch-size", "0"], "--batch-size must be at least 1"),
    (["--data", "{tmp}/data.txt", "--ckpt", "{tmp}/nowhere"], "does not exist"),
    pytest.param(["--data", "{tmp}/data.txt", "--device", "cuda"], "no CUDA GPU",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")),
])
def test_bad_input_is_one_line_and_exit_code_2(ckpt, flags, message, tmp_path, capsys):
    (tmp_path / "empty.txt").write_text("\n\n")
    (tmp_path / "data.txt").write_text("\n".join(DOCS))
    with pytest.raises(SystemExit) as exit_info:
        cli(["--ckpt", str(ckpt), "--device", "cpu", *(f.format(tmp=tmp_path) for f in flags)])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err
