"""Texts longer than the context, read as windows whose logits are averaged."""

import pytest
import torch
from conftest import tiny_config

from minilm.model.classifier import MiniLMForSequenceClassification, split_windows, window_starts
from minilm.model.config import ConfigError


def test_windows_start_stride_apart_and_skip_what_an_earlier_window_read():
    ids = torch.arange(1, 21).reshape(2, 10)  # (2, 10)
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0  # the second text has 5 real tokens
    windows, wmask, owner = split_windows(ids, mask, T=4, stride=3)
    # text 0: windows at 0, 3, 6 (each holds 4 real tokens, more than T - stride = 1 new ones);
    # text 1: at 0 and 3 (2 real tokens), not at 6 (only padding)
    assert owner.tolist() == [0, 0, 0, 1, 1]
    assert windows[:3].tolist() == [[1, 2, 3, 4], [4, 5, 6, 7], [7, 8, 9, 10]]
    assert windows[4].tolist()[:2] == [14, 15] and wmask[4].tolist() == [1, 1, 0, 0]


def test_the_last_window_reaches_the_end_of_the_text():
    ids = torch.arange(1, 8)[None]  # 7 tokens, T = 4, stride 2: windows at 0, 2, 4 -> [4..7] ends the text
    windows, _, owner = split_windows(ids, torch.ones_like(ids), T=4, stride=2)
    assert windows.tolist() == [[1, 2, 3, 4], [3, 4, 5, 6], [5, 6, 7, 0]]  # the last has 3 > 2 real tokens
    ids = torch.arange(1, 7)[None]  # 6 tokens: the window at 2 reaches the end; none starts at 4
    windows, _, _ = split_windows(ids, torch.ones_like(ids), T=4, stride=2)
    assert windows.tolist() == [[1, 2, 3, 4], [3, 4, 5, 6]]
    # beside an 8-token text, windows start at 0, 2 and 4; the 6-token text's window at 4 would hold
    # tokens 5 and 6 only, which the window at 2 already read: it is dropped
    ids = torch.stack([torch.tensor([1, 2, 3, 4, 5, 6, 0, 0]), torch.arange(1, 9)])
    mask = (ids > 0).long()
    windows, _, owner = split_windows(ids, mask, T=4, stride=2)
    assert owner.tolist() == [0, 0, 1, 1, 1]


@pytest.mark.parametrize("length", [1, 3, 4, 5, 6, 7, 8, 12, 13])
def test_window_starts_are_where_split_windows_begins_its_windows(length):
    ids = torch.arange(1, length + 1)[None]  # (1, length)
    if length <= 4:
        assert window_starts(length, 4, 2) == [0]  # a text that fits the context is one window
        return
    windows, _, _ = split_windows(ids, torch.ones_like(ids), T=4, stride=2)
    assert [int(w[0]) - 1 for w in windows] == window_starts(length, 4, 2)


def classifier(stride: int) -> MiniLMForSequenceClassification:
    torch.manual_seed(0)
    return MiniLMForSequenceClassification(tiny_config(), num_labels=2, window_stride=stride).eval()


def test_a_long_text_gets_the_mean_of_its_windows_logits():
    clf = classifier(stride=12)  # context 16
    text = torch.randint(4, 97, (1, 40))
    logits, _ = clf(text, torch.ones_like(text))
    # windows at 0, 12 and 24 (16 + 12 + 12 = 40 tokens): each classified alone, then averaged
    alone = torch.cat([clf(text[:, s:s + 16])[0] for s in (0, 12, 24)])
    torch.testing.assert_close(logits, alone.mean(dim=0, keepdim=True), rtol=1e-5, atol=1e-6)


def test_a_short_text_beside_a_long_one_gets_its_own_logits():
    clf = classifier(stride=8)
    short, long = torch.randint(4, 97, (1, 10)), torch.randint(4, 97, (1, 30))
    batch = torch.zeros(2, 30, dtype=torch.long)
    mask = torch.zeros_like(batch)
    batch[0, :10], mask[0, :10] = short, 1
    batch[1], mask[1] = long, 1
    logits, loss = clf(batch, mask, labels=torch.tensor([0, 1]))
    torch.testing.assert_close(logits[0], clf(short)[0][0], rtol=1e-5, atol=1e-6)
    assert logits.shape == (2, 2) and torch.isfinite(loss)


def test_without_windows_a_long_text_is_refused_and_a_bad_stride_too():
    with pytest.raises(ValueError, match="exceeds context_length"):
        classifier(stride=0)(torch.randint(4, 97, (1, 20)))
    with pytest.raises(ConfigError, match="window_stride"):
        MiniLMForSequenceClassification(tiny_config(), num_labels=2, window_stride=17)
