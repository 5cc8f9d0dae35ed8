"""The fine-tuning job end to end: outputs, learning, freezing, prediction, and bad input."""

import csv
import json
import pickle

import pytest
import torch
from jobs import tiny_finetune_config, tiny_pretrain_config, write_labeled_splits

from minilm import MiniLM, ModelConfig
from minilm.checkpoint import lm_from_dir
from minilm.common.errors import UserError
from minilm.model.classifier import MiniLMForSequenceClassification, freeze_layers
from minilm.text.labeled import write_labeled_tsv
from minilm.text.tokenizer import Tokenizer
from minilm.train import finetune, labeled_splits, pretrain
from minilm.train.trainer import OptimSettings, Trainer


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    out = tmp_path_factory.mktemp("pretrained")
    pretrain.run(tiny_pretrain_config(out, max_steps=8))
    return out


@pytest.fixture(scope="module")
def splits(tmp_path_factory):
    return write_labeled_splits(tmp_path_factory.mktemp("labeled"))


@pytest.mark.parametrize("pooling", ["last", "mean"])
def test_a_tiny_fine_tune_writes_complete_outputs_and_beats_chance(pretrained, splits, tmp_path, pooling):
    out = tmp_path / "ft"
    reports = finetune.run(tiny_finetune_config(pretrained, out, splits, pooling=pooling, epochs=6))
    for name in ("config.json", "model.pt", "tokenizer.model", "labels.json", "metrics.csv", "report.json",
                 "predictions.tsv"):
        assert (out / name).is_file(), name
    test = json.loads((out / "report.json").read_text())["test"]
    assert set(test) >= {"accuracy", "macro_f1", "per_class", "confusion_matrix"}
    assert test["accuracy"] >= 0.75 and reports.splits["test"]["accuracy"] == test["accuracy"]
    assert sum(map(sum, test["confusion_matrix"])) == 40
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert len(rows) == 6 and {"train_loss", "valid_loss", "valid_accuracy", "valid_macro_f1"} <= set(rows[0])
    predictions = list(csv.DictReader((out / "predictions.tsv").open(), delimiter="\t"))
    assert len(predictions) == 40 and predictions[0]["gold"] in ("positive", "negative")


def test_predict_round_trips_a_saved_model(pretrained, splits, tmp_path, capsys):
    out = tmp_path / "ft"
    finetune.run(tiny_finetune_config(pretrained, out, splits, epochs=4))
    saved = list(csv.DictReader((out / "predictions.tsv").open(), delimiter="\t"))[:5]
    result = finetune.predict(tiny_finetune_config(pretrained, out, splits, predict=[r["text"] for r in saved]))
    assert [p["label"] for p in result["predictions"]] == [r["predicted"] for r in saved]
    for p, r in zip(result["predictions"], saved, strict=True):
        assert abs(max(p["probabilities"].values()) - float(r["probability"])) < 1e-3
    assert saved[0]["text"] in capsys.readouterr().out


def _one_step(clf: MiniLMForSequenceClassification) -> None:
    trainer = Trainer(clf, OptimSettings(1e-2, 0.0, 0, 10, 0.0, 0.1, 1.0), torch.device("cpu"), torch.float32)
    batch = (torch.randint(4, 300, (4, 10)), torch.ones(4, 10, dtype=torch.long), torch.tensor([0, 1, 0, 1]))
    trainer.step([batch], lambda m, b: m(*b)[1])


@pytest.mark.parametrize("value_embeddings", [False, True])
@pytest.mark.parametrize("freeze,trained_blocks", [("body", []), ("1", [1]), ("none", [0, 1]),
                                                   ("embeddings", [0, 1])])
def test_freeze_modes_really_freeze(pretrained, freeze, trained_blocks, value_embeddings):
    lm = lm_from_dir(pretrained)
    if value_embeddings:  # the same model with a value-embedding table per block, each trained with its block
        lm_ve = MiniLM(ModelConfig(**{**lm.cfg.to_dict(), "value_embeddings": True}))
        missing, unexpected = lm_ve.load_state_dict(lm.state_dict(), strict=False)
        assert not unexpected and all("value_embeddings" in key for key in missing)
        lm = lm_ve
    clf = MiniLMForSequenceClassification.from_pretrained_lm(lm, num_labels=2)
    before = {k: v.clone() for k, v in clf.state_dict().items()}
    trainable, total = freeze_layers(clf, freeze)
    assert (trainable == total) == (freeze == "none")
    tables = clf.body.value_embeddings or []
    if freeze == "embeddings":
        assert total - trainable == clf.body.token_embedding.weight.numel() + sum(t.weight.numel() for t in tables)
    _one_step(clf)
    after = clf.state_dict()
    assert not torch.equal(after["head.weight"], before["head.weight"])
    for i in range(2):
        changed = not torch.equal(after[f"body.blocks.{i}.attn.qkv.weight"], before[f"body.blocks.{i}.attn.qkv.weight"])
        assert changed == (i in trained_blocks), (freeze, i)
        if tables:
            key = f"body.value_embeddings.{i}.weight"
            table_changed = not torch.equal(after[key], before[key])
            assert table_changed == (i in trained_blocks and freeze != "embeddings"), (freeze, i)
    embedding_changed = not torch.equal(after["body.token_embedding.weight"], before["body.token_embedding.weight"])
    assert embedding_changed == (freeze == "none")


def test_missing_pretrained_dir_says_which_command_makes_it(splits, tmp_path):
    with pytest.raises(UserError, match=r"python -m minilm\.pretrain"):  # spelled as this process was started
        finetune.run(tiny_finetune_config(tmp_path / "missing", tmp_path / "ft", splits))


def test_a_dir_that_is_not_a_checkpoint(splits, tmp_path):
    (tmp_path / "notes").mkdir()
    with pytest.raises(UserError, match="not a minilm checkpoint dir"):
        finetune.run(tiny_finetune_config(tmp_path / "notes", tmp_path / "ft", splits))


class _Payload:
    """Unpickling this would create a file: proof that code ran."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_model_pt_that_is_not_a_state_dict_is_refused_without_running_it(pretrained, splits, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    for name in ("config.json", "tokenizer.model"):
        (bad / name).write_bytes((pretrained / name).read_bytes())
    marker = tmp_path / "code_ran"
    with open(bad / "model.pt", "wb") as f:
        pickle.dump({"weights": _Payload(str(marker))}, f)
    with pytest.raises(UserError, match="not a plain tensor checkpoint"):
        finetune.run(tiny_finetune_config(bad, tmp_path / "ft", splits))
    assert not marker.exists()


def test_a_tokenizer_that_does_not_match_the_checkpoint(pretrained, splits, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    for name in ("config.json", "model.pt"):
        (other / name).write_bytes((pretrained / name).read_bytes())
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(f"line {i} of a different corpus with other words" for i in range(300)))
    Tokenizer.train(corpus, other / "tokenizer.model", vocab_size=300)
    with pytest.raises(UserError, match="is not the tokenizer the model was trained with"):
        finetune.run(tiny_finetune_config(other, tmp_path / "ft", splits))


def test_predict_on_a_dir_that_was_never_fine_tuned(pretrained, splits):
    with pytest.raises(UserError, match="not a fine-tuned classifier"):
        finetune.predict(tiny_finetune_config(pretrained, pretrained, splits, predict=["hello"]))


def test_a_missing_label_column_lists_the_columns(pretrained, splits, tmp_path):
    with pytest.raises(UserError, match="sentiment"):
        finetune.run(tiny_finetune_config(pretrained, tmp_path / "ft", splits, label_column="sentiment"))


def test_a_label_in_test_never_seen_in_train(pretrained, splits, tmp_path):
    test = tmp_path / "test.tsv"
    write_labeled_tsv(test, ["the soup was fine", "the soup was great"], ["neutral", "positive"])
    with pytest.raises(UserError, match="neutral"):
        finetune.run(tiny_finetune_config(pretrained, tmp_path / "ft", {**splits, "test": test}))


def test_the_cli_turns_bad_input_into_one_line(pretrained, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        finetune.cli(["--init", str(tmp_path / "missing"), "--out", str(tmp_path / "ft")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "python -m minilm.pretrain" in err


def test_many_string_classes_and_auto_class_weights(pretrained, tmp_path):
    # Twelve classes named by strings, one of them rare: the report covers every class.
    names = [f"topic-{c}" for c in "abcdefghijkl"]
    splits = {}
    for split, size in (("train", 120), ("valid", 36), ("test", 36)):
        labels = [names[i % 12] if i % 10 else names[0] for i in range(size)]
        texts = [f"{label.split('-')[1]} thing {i}" for i, label in enumerate(labels)]
        splits[split] = tmp_path / f"{split}.tsv"
        write_labeled_tsv(splits[split], texts, labels)
    reports = finetune.run(tiny_finetune_config(pretrained, tmp_path / "ft", splits, epochs=1, class_weights="auto"))
    assert json.loads((tmp_path / "ft" / "labels.json").read_text())["labels"] == sorted(names)
    test = reports.splits["test"]
    assert len(test["confusion_matrix"]) == 12 and set(test["per_class"]) == set(names)


def test_auto_class_weights_are_inverse_frequencies():
    split = labeled_splits.Split("train", ["x"] * 4, [0, 0, 0, 1], [[2, 3]] * 4)
    weights = labeled_splits.class_weight_tensor(split, 2, torch.device("cpu"))
    torch.testing.assert_close(weights, torch.tensor([4 / (2 * 3), 4 / (2 * 1)]))


def test_a_single_label_and_files_without_train_are_clear_errors(pretrained, splits, tmp_path):
    one = tmp_path / "one.tsv"
    write_labeled_tsv(one, ["good soup", "fine soup"], ["positive", "positive"])
    with pytest.raises(UserError, match="only one label"):
        finetune.run(tiny_finetune_config(pretrained, tmp_path / "ft", {**splits, "train": one}))
    config = tiny_finetune_config(pretrained, tmp_path / "ft2", splits)
    config.train = ""
    with pytest.raises(UserError, match="given without --train"):
        finetune.run(config)


def test_the_final_report_reuses_the_best_epochs_valid_evaluation(pretrained, splits, tmp_path, monkeypatch):
    """valid is read once per epoch, not again at the end: the saved weights are the best epoch's,
    so its report is the final one (on IMDB that skips half a minute of evaluation)."""
    from minilm.train import finetune_report
    reads = []
    real_classify = finetune_report.classify

    def counting_classify(model, seqs, *args, desc="", **kwargs):
        reads.append(desc)
        return real_classify(model, seqs, *args, desc=desc, **kwargs)

    monkeypatch.setattr(finetune_report, "classify", counting_classify)
    out = tmp_path / "ft"
    report = finetune.run(tiny_finetune_config(pretrained, out, splits, epochs=3))
    assert reads.count("evaluating valid") == 3 and reads.count("evaluating test") == 1
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    # the epoch EpochState.improves keeps: the highest macro-F1, of equals the lowest loss
    best = max(rows, key=lambda r: (float(r["valid_macro_f1"]), -float(r["valid_loss"])))
    assert report.splits["valid"]["macro_f1"] == pytest.approx(float(best["valid_macro_f1"]), abs=1e-5)
    assert report.splits["valid"]["loss"] == pytest.approx(float(best["valid_loss"]), abs=1e-5)


def test_the_best_epoch_is_the_higher_macro_f1_and_on_a_tie_the_lower_loss():
    state = finetune.EpochState()
    epochs = [({"macro_f1": 0.9, "loss": 0.50}, True),  # the first epoch is the best so far
              ({"macro_f1": 0.9, "loss": 0.40}, True),  # same F1, lower loss: the more confident epoch
              ({"macro_f1": 0.9, "loss": 0.45}, False),  # same F1, higher loss than the best
              ({"macro_f1": 0.8, "loss": 0.10}, False),  # a lower F1 never wins, however low its loss
              ({"macro_f1": 0.95, "loss": 0.90}, True)]  # a higher F1 always wins
    for report, better in epochs:
        assert state.improves(report) is better, report
        if better:
            state.best_valid = report
    assert state.best_valid == {"macro_f1": 0.95, "loss": 0.90}
