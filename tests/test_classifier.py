"""The classifier: pooling ignores padding, the body comes from the LM, the LM loss is auxiliary."""

import pytest
import torch
from conftest import ATTN_IMPLS, tiny_config

from minilm import MiniLM, MiniLMForSequenceClassification
from minilm.checkpoint import lm_from_dir
from minilm.common.errors import UserError
from minilm.common.files import save_json, save_torch


@pytest.mark.parametrize("pooling", ["last", "mean"])
@pytest.mark.parametrize("impl", ATTN_IMPLS)
def test_padding_and_junk_beyond_the_mask_do_not_change_logits(pooling, impl):
    clf = MiniLMForSequenceClassification(tiny_config(attn_impl=impl), num_labels=3, pooling=pooling).eval()
    text = torch.randint(4, 97, (1, 6))
    alone, _ = clf(text)
    padded = torch.cat([text, torch.zeros(1, 4, dtype=torch.long)], dim=1)
    junk = torch.cat([text, torch.randint(4, 97, (1, 7))], dim=1)
    mask_padded = torch.tensor([[1] * 6 + [0] * 4])
    mask_junk = torch.tensor([[1] * 6 + [0] * 7])
    torch.testing.assert_close(clf(padded, mask_padded)[0], alone, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(clf(junk, mask_junk)[0], alone, rtol=1e-5, atol=1e-5)


def test_a_batch_of_different_lengths_equals_one_by_one():
    clf = MiniLMForSequenceClassification(tiny_config(), num_labels=2).eval()
    a, b = torch.randint(4, 97, (1, 9)), torch.randint(4, 97, (1, 4))
    batch = torch.zeros(2, 9, dtype=torch.long)
    batch[0], batch[1, :4] = a[0], b[0]
    mask = (torch.arange(9)[None] < torch.tensor([[9], [4]])).long()
    logits, _ = clf(batch, mask)
    torch.testing.assert_close(logits[0], clf(a)[0][0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(logits[1], clf(b)[0][0], rtol=1e-5, atol=1e-5)


def test_from_pretrained_lm_copies_the_body_and_leaves_the_lm_alone():
    lm = MiniLM(tiny_config())
    before = {k: v.clone() for k, v in lm.state_dict().items()}
    clf = MiniLMForSequenceClassification.from_pretrained_lm(lm, num_labels=4)
    for name, tensor in lm.body.state_dict().items():
        assert torch.equal(clf.body.state_dict()[name], tensor)
    x = torch.randint(0, 97, (2, 10))
    torch.testing.assert_close(clf.body(x), lm.body(x))
    with torch.no_grad():
        for p in clf.parameters():
            p.add_(1.0)  # train the classifier a lot...
    for name, tensor in lm.state_dict().items():
        assert torch.equal(tensor, before[name])  # ...and the LM has not moved


def test_from_checkpoint_dir_and_across_attention_impls(tmp_path):
    lm = MiniLM(tiny_config(attn_impl="fused", tie_weights=False))
    save_json({"kind": "pretrain", "model": {**lm.cfg.to_dict(), "attn_impl": "explicit"}},
              tmp_path / "config.json")
    save_torch(lm.state_dict(), tmp_path / "model.pt")
    clf = MiniLMForSequenceClassification.from_pretrained_lm(lm_from_dir(tmp_path), num_labels=2)
    assert clf.cfg.attn_impl == "explicit"
    torch.testing.assert_close(clf.lm_head.weight, lm.lm_head.weight)
    x = torch.randint(0, 97, (2, 10))
    torch.testing.assert_close(clf.body(x), lm.body(x), rtol=1e-5, atol=1e-5)


def test_bad_checkpoint_dirs_are_clear_errors(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        MiniLMForSequenceClassification.from_pretrained_lm(lm_from_dir(tmp_path / "nope"), num_labels=2)
    with pytest.raises(UserError, match="no config.json"):
        MiniLMForSequenceClassification.from_pretrained_lm(lm_from_dir(tmp_path), num_labels=2)
    save_json({"model": tiny_config().to_dict()}, tmp_path / "config.json")
    torch.save({"weights": torch.nn.Linear(2, 2)}, tmp_path / "model.pt")  # a pickled module, not tensors
    with pytest.raises(UserError, match="not a plain tensor checkpoint"):
        MiniLMForSequenceClassification.from_pretrained_lm(lm_from_dir(tmp_path), num_labels=2)


def test_auxiliary_lm_loss_changes_the_gradient():
    clf = MiniLMForSequenceClassification(tiny_config(), num_labels=2)
    x, labels = torch.randint(4, 97, (4, 10)), torch.tensor([0, 1, 0, 1])
    grads = []
    for weight in (0.0, 0.5):
        clf.zero_grad()
        _, loss = clf(x, labels=labels, lm_loss_weight=weight)
        loss.backward()
        grads.append(clf.body.token_embedding.weight.grad.clone())
    assert not torch.allclose(grads[0], grads[1])


def test_classifier_learns_a_simple_rule():
    # Label = whether token 5 appears: the last-token state must carry information from earlier.
    clf = MiniLMForSequenceClassification(tiny_config(), num_labels=2)
    x = torch.randint(6, 97, (32, 10))
    labels = torch.randint(0, 2, (32,))
    x[labels == 1, 3] = 5
    opt = torch.optim.AdamW(clf.parameters(), lr=3e-3)
    for _ in range(100):
        _, loss = clf(x, labels=labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert (clf(x)[0].argmax(-1) == labels).float().mean() == 1.0
