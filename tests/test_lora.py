"""LoRA: the output is unchanged at init, merged equals unmerged, and only the adapters train."""

import torch
from conftest import tiny_config
from torch import nn

from minilm import MiniLM
from minilm.model.classifier import MiniLMForSequenceClassification
from minilm.model.lora import LORA_TARGETS, LoRALinear, add_lora, merge_lora, merged_state_dict


def test_lora_leaves_the_output_unchanged_at_init():
    lm = MiniLM(tiny_config()).eval()
    ids = torch.randint(0, 97, (3, 16))
    before = lm(ids)[0]
    add_lora(lm.body, rank=4, alpha=8)
    torch.testing.assert_close(lm(ids)[0], before, rtol=0, atol=0)  # B = 0: the update is exactly 0


def trained_lora_classifier(activation: str = "gelu") -> MiniLMForSequenceClassification:
    torch.manual_seed(1)
    clf = MiniLMForSequenceClassification(tiny_config(activation=activation), num_labels=3).eval()
    add_lora(clf.body, rank=4, alpha=8)
    with torch.no_grad():  # as if trained: non-zero B
        for module in clf.modules():
            if isinstance(module, LoRALinear):
                module.lora_b.normal_(0, 0.1)
    return clf


def test_merged_equals_unmerged():
    clf = trained_lora_classifier("swiglu")  # the gated MLP has all three targets
    ids, mask = torch.randint(0, 97, (4, 16)), torch.ones(4, 16, dtype=torch.long)
    mask[0, 10:] = 0
    unmerged = clf(ids, mask)[0]
    plain = MiniLMForSequenceClassification(tiny_config(activation="swiglu"), num_labels=3).eval()
    plain.load_state_dict(merged_state_dict(clf))  # a plain model reads the merged weights, key for key
    torch.testing.assert_close(plain(ids, mask)[0], unmerged, rtol=1e-5, atol=1e-6)
    merge_lora(clf)
    assert not any(isinstance(m, LoRALinear) for m in clf.modules())
    torch.testing.assert_close(clf(ids, mask)[0], unmerged, rtol=1e-5, atol=1e-6)


def test_the_adapters_change_the_function_once_trained():
    clf = trained_lora_classifier()
    ids = torch.randint(0, 97, (2, 16))
    with_adapters = clf(ids)[0]
    for module in clf.modules():
        if isinstance(module, LoRALinear):
            module.lora_b.data.zero_()
    assert not torch.allclose(clf(ids)[0], with_adapters)


def test_trainable_parameters_are_r_times_in_plus_out_per_wrapped_projection():
    cfg = tiny_config()  # C = 32, d_ff = 128, 2 blocks, GELU: qkv, out_proj, up, down per block
    lm = MiniLM(cfg)
    for p in lm.parameters():
        p.requires_grad = False
    wrapped = add_lora(lm.body, rank=4, alpha=8)
    assert wrapped == 4 * cfg.n_layer
    C, F, r = cfg.d_model, cfg.d_ff, 4
    per_block = r * (C + 3 * C) + r * (C + C) + r * (C + F) + r * (F + C)  # qkv, out_proj, up, down
    trainable = sum(p.numel() for p in lm.parameters() if p.requires_grad)
    assert trainable == cfg.n_layer * per_block
    names = {n.split(".")[-2] for n, p in lm.named_parameters() if p.requires_grad}
    assert names <= set(LORA_TARGETS)


def test_gradients_reach_only_the_adapters():
    lm = MiniLM(tiny_config())
    for p in lm.parameters():
        p.requires_grad = False
    add_lora(lm.body, rank=2, alpha=4)
    ids = torch.randint(0, 97, (2, 16))
    lm(ids, targets=ids)[1].backward()
    for name, p in lm.named_parameters():
        assert (p.grad is not None) == ("lora_" in name), name
    layer = next(m for m in lm.modules() if isinstance(m, LoRALinear))
    assert layer.lora_b.grad.abs().sum() > 0  # B starts at 0 but A is random: B's gradient is not 0
    assert isinstance(layer.base, nn.Linear) and not layer.base.weight.requires_grad
