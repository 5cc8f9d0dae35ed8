"""Fine-tuning recipes end to end: long texts as windows, LoRA merged on save, layer-wise learning
rates, the linear probe before fine-tuning (LP-FT), label smoothing."""

import json

import pytest
import torch
from conftest import tiny_config
from jobs import tiny_finetune_config, tiny_pretrain_config, write_labeled_splits

from minilm.checkpoint import load_classifier
from minilm.common.errors import UserError
from minilm.model.classifier import MiniLMForSequenceClassification, window_starts
from minilm.text.labeled import write_labeled_tsv
from minilm.train import finetune, pretrain
from minilm.train.config import FinetuneConfig
from minilm.train.finetune_recipe import layer_lr_scales
from minilm.train.labeled_splits import Split, epoch_sequences

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    out = tmp_path_factory.mktemp("pretrained")
    pretrain.run(tiny_pretrain_config(out, max_steps=8))  # context 32
    return out


@pytest.fixture(scope="module")
def splits(tmp_path_factory):
    return write_labeled_splits(tmp_path_factory.mktemp("labeled"))


@pytest.fixture(scope="module")
def long_splits(tmp_path_factory):
    """The label is the adjective at the very end of a text far longer than the context (32)."""
    folder = tmp_path_factory.mktemp("long")
    filler = " ".join(["the soup and the room"] * 3)  # 60 tokens of nothing with the tiny tokenizer
    paths = {}
    for name, size in (("train", 96), ("valid", 32), ("test", 32)):
        texts = [f"{filler} {'great' if i % 2 else 'awful'}" for i in range(size)]
        labels = ["positive" if i % 2 else "negative" for i in range(size)]
        paths[name] = folder / f"{name}.tsv"
        write_labeled_tsv(paths[name], texts, labels)
    return paths


@pytest.mark.parametrize("train_windows", ["one", "all"])
def test_windows_read_the_end_of_long_texts_that_truncation_cuts_off(pretrained, long_splits, tmp_path, train_windows):
    common = dict(epochs=20, lr=3e-3)  # the last window alone differs: the others read the same filler
    cut = finetune.run(tiny_finetune_config(pretrained, tmp_path / "cut", long_splits, long_texts="truncate",
                                            **common))
    windows = finetune.run(tiny_finetune_config(pretrained, tmp_path / "win", long_splits,
                                                train_windows=train_windows, **common))  # windows: the default
    assert cut.splits["test"]["accuracy"] <= 0.6  # the verdict was cut off: chance
    assert windows.splits["test"]["accuracy"] >= 0.9
    saved = json.loads((tmp_path / "win" / "config.json").read_text())["classifier"]
    assert saved["window_stride"] == 24 and saved["max_windows"] == 4  # 3/4 of the context 32; the default
    model, _, _ = load_classifier(tmp_path / "win", CPU)
    assert model.window_stride == 24 and model.max_input_tokens == 32 + 3 * 24
    # predict reads the saved model the same way: windows, not truncation
    texts = [line.split("\t")[0] for line in long_splits["test"].read_text().splitlines()[1:5]]
    result = finetune.predict(tiny_finetune_config(pretrained, tmp_path / "win", long_splits, predict=texts))
    assert [p["label"] for p in result["predictions"]] == ["negative", "positive", "negative", "positive"]


def test_train_windows_one_reads_one_window_per_text_drawn_anew_each_epoch():
    cfg = FinetuneConfig(window_stride=3)  # --long-texts windows --train-windows one: the defaults
    text = list(range(100, 120))  # 20 tokens, context 8, stride 3: windows start at 0, 3, ..., 12, 15
    train = Split("train", ["x"] * 64, [0] * 64, [text] * 64)
    epochs = [epoch_sequences(cfg, train, None, epoch, 8) for epoch in (1, 2)]
    for seqs in epochs:
        assert all(len(seq) == 8 or seq[-1] == text[-1] for seq in seqs)  # a whole window, or the text's end
        assert {seq[0] - 100 for seq in seqs} <= set(window_starts(20, 8, 3))
    assert {seq[0] - 100 for seq in epochs[0]} == set(window_starts(20, 8, 3))  # 64 draws reach every start
    assert epochs[0] != epochs[1]
    every = epoch_sequences(FinetuneConfig(train_windows="all", window_stride=3), train, None, 1, 8)
    assert every is train.seqs  # --train-windows all: the whole text, which the model splits into windows


def test_max_windows_keeps_the_head_and_the_tail(pretrained, long_splits, tmp_path, capsys):
    report = finetune.run(tiny_finetune_config(pretrained, tmp_path / "ht", long_splits, long_texts="windows",
                                               max_windows=2, epochs=20, lr=3e-3))
    assert "their first quarter and their end were kept" in capsys.readouterr().out
    assert report.splits["test"]["accuracy"] >= 0.9  # the end survived the cut


def test_lora_trains_adapters_only_and_saves_a_plain_checkpoint(pretrained, splits, tmp_path, capsys):
    out = tmp_path / "lora"
    report = finetune.run(tiny_finetune_config(pretrained, out, splits, lora_rank=4, epochs=6, lr=1e-2))
    printed = capsys.readouterr().out
    assert "--lora-rank 4: adapters and head" in printed
    state = torch.load(out / "model.pt", weights_only=True)
    assert not any("lora" in key or ".base." in key for key in state)  # merged: a plain model's keys
    model, _, _ = load_classifier(out, CPU)  # every other tool reads it as a plain classifier
    assert report.splits["test"]["accuracy"] >= 0.6  # rank 4 on an 8-step model learns slowly, but learns
    pretrained_body = torch.load(pretrained / "model.pt", weights_only=True)
    changed = [k for k, v in pretrained_body.items() if k.startswith("body.")
               and not torch.equal(v, model.state_dict()[k])]
    assert changed and all(k.split(".")[-2] in ("qkv", "out_proj", "up", "down") for k in changed)


def test_lora_and_freeze_together_are_refused(pretrained, splits, tmp_path):
    with pytest.raises(UserError, match="--lora-rank freezes the body"):
        tiny_finetune_config(pretrained, tmp_path / "x", splits, lora_rank=4, freeze="body")


def test_layer_lr_decay_gives_lower_blocks_smaller_rates():
    cfg = FinetuneConfig(layer_lr_decay=0.5, head_lr=1e-2, lr=1e-3)
    scales = layer_lr_scales(cfg, n_layer=3)
    assert scales["head."] == 10.0
    assert [scales[f"body.blocks.{i}."] for i in range(3)] == [0.25, 0.5, 1.0]
    assert [scales[f"body.value_embeddings.{i}."] for i in range(3)] == [0.25, 0.5, 1.0]  # as their block's
    assert scales["body.token_embedding."] == 0.125
    assert layer_lr_scales(FinetuneConfig(), n_layer=3) is None


def test_layer_lr_decay_reaches_the_optimizer(pretrained, splits):
    cfg = tiny_finetune_config(pretrained, pretrained / "unused", splits, layer_lr_decay=0.5)
    train = finetune.prepare_data(cfg)[2]["train"]
    model, trainer, _ = finetune.prepare_training(cfg, str(pretrained), train, 2, CPU, torch.float32,
                                                  finetune.Distributed())
    scale_of = {id(p): g["lr_scale"] for g in trainer.optimizer.param_groups for p in g["params"]}
    assert scale_of[id(model.body.blocks[1].mlp.up.weight)] == 1.0
    assert scale_of[id(model.body.blocks[0].mlp.up.weight)] == 0.5
    assert scale_of[id(model.body.token_embedding.weight)] == 0.25


def test_the_linear_probe_trains_the_head_alone_first(pretrained, splits, tmp_path, monkeypatch):
    cfg = tiny_finetune_config(pretrained, tmp_path / "x", splits, probe_steps=6, head_lr=1e-2)
    train = finetune.prepare_data(cfg)[2]["train"]
    before = torch.load(pretrained / "model.pt", weights_only=True)
    model, trainer, _ = finetune.prepare_training(cfg, str(pretrained), train, 2, CPU, torch.float32,
                                                  finetune.Distributed())
    body = {k: v for k, v in model.state_dict().items() if k.startswith("body.")}
    assert all(torch.equal(v, before[k]) for k, v in body.items())  # the probe left the body as it was
    fresh = MiniLMForSequenceClassification.from_pretrained_lm(finetune.lm_from_dir(str(pretrained)), 2)
    assert not torch.equal(model.head.weight, fresh.head.weight)  # ... and trained the head
    # then everything trains (--freeze none) but the untied LM head, which only the auxiliary LM loss would use
    assert all(p.requires_grad != name.startswith("lm_head.") for name, p in model.named_parameters())
    assert trainer.step_count == 0


def test_label_smoothing_reaches_the_loss():
    torch.manual_seed(0)
    clf = MiniLMForSequenceClassification(tiny_config(vocab_size=300), num_labels=3).eval()
    ids, labels = torch.randint(4, 300, (4, 8)), torch.tensor([0, 1, 2, 1])
    logits, smoothed = clf(ids, labels=labels, label_smoothing=0.2)
    # the target is 0.8·one-hot + 0.2/3 everywhere: cross-entropy against that mixture
    log_p = torch.log_softmax(logits, dim=-1)
    target = torch.full_like(log_p, 0.2 / 3).scatter_add(1, labels[:, None], torch.full((4, 1), 0.8))
    torch.testing.assert_close(smoothed, -(target * log_p).sum(dim=1).mean())
    assert not torch.isclose(smoothed, clf(ids, labels=labels)[1])
