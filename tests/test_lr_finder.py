"""--find-lr: the range test reads a known curve right, and on both jobs writes only lr_find.*."""

import csv
import itertools
import math

import pytest
from jobs import tiny_finetune_config, tiny_pretrain_config, write_labeled_splits
from tiny_checkpoint import make_checkpoint

from minilm.common.errors import UserError
from minilm.train import finetune, pretrain
from minilm.train.lr_finder import exponential_lrs, lr_range_test


class CurveTrainer:
    """Stands in for a Trainer: the 'loss' of a step is a known function of its learning rate."""

    def step(self, micro_batches, loss_fn, lr):
        x = math.log10(lr)
        # falls from 5 to 1 around lr = 1e-3, then explodes beyond lr = 1e-1
        return 1 + 4 / (1 + math.exp(3 * (x + 3))) + max(0.0, 100 * (x + 1))


def test_exponential_lrs_span_the_range_evenly_on_a_log_scale():
    lrs = exponential_lrs(7, 1e-6, 1.0)
    assert lrs[0] == pytest.approx(1e-6) and lrs[-1] == pytest.approx(1.0)
    ratios = [b / a for a, b in zip(lrs, lrs[1:], strict=False)]
    assert ratios == pytest.approx([10.0] * 6)


def test_the_range_test_reads_a_known_curve():
    finding = lr_range_test(CurveTrainer(), itertools.repeat([]), loss_fn=None, steps=100)
    assert finding.stopped_early and finding.rows[-1]["lr"] < 1.0  # stopped once the loss exploded
    assert 1e-4 < finding.steepest_lr < 1e-2  # the sigmoid is steepest at 1e-3 (the average lags a little)
    assert 1e-2 < finding.min_loss_lr <= 1.5e-1  # the loss is lowest just before the explosion
    assert finding.suggested_lr <= finding.min_loss_lr / 10 * 1.5


def _files(out):
    return {p.name for p in out.iterdir()}


@pytest.mark.parametrize("existing_run", [False, True])
def test_pretrain_find_lr_writes_only_lr_find_files(tmp_path, capsys, existing_run):
    out = tmp_path / "pretrain"
    if existing_run:
        out.mkdir()
        (out / "model.pt").write_bytes(b"a finished run's weights")
    finding = pretrain.find_lr(tiny_pretrain_config(out, find_lr=True, find_lr_steps=30))
    assert _files(out) - {"lr_find.png"} == {"lr_find.csv"} | ({"model.pt"} if existing_run else set())
    if existing_run:
        assert (out / "model.pt").read_bytes() == b"a finished run's weights"
    rows = list(csv.DictReader((out / "lr_find.csv").open()))
    lrs = [float(r["lr"]) for r in rows]
    assert len(rows) >= 10 and lrs == sorted(lrs) and lrs[0] == pytest.approx(1e-6)
    assert f"suggested --lr {finding.suggested_lr:g}" in capsys.readouterr().out


@pytest.mark.parametrize("existing_run", [False, True])
def test_finetune_find_lr_writes_only_lr_find_files(tmp_path, capsys, existing_run):
    init = make_checkpoint(tmp_path / "init")
    splits = write_labeled_splits(tmp_path)
    out = tmp_path / "finetune"
    if existing_run:
        out.mkdir()
        (out / "model.pt").write_bytes(b"a finished run's weights")
    finding = finetune.find_lr(tiny_finetune_config(init, out, splits, find_lr=True, find_lr_steps=20))
    assert _files(out) - {"lr_find.png"} == {"lr_find.csv"} | ({"model.pt"} if existing_run else set())
    if existing_run:
        assert (out / "model.pt").read_bytes() == b"a finished run's weights"
    lrs = [float(r["lr"]) for r in csv.DictReader((out / "lr_find.csv").open())]
    assert len(lrs) >= 10 and lrs == sorted(lrs)
    assert f"suggested --lr {finding.suggested_lr:g}" in capsys.readouterr().out


def test_find_lr_steps_must_draw_a_curve(tmp_path):
    with pytest.raises(UserError, match="--find-lr-steps must be at least 10"):
        tiny_pretrain_config(tmp_path, find_lr=True, find_lr_steps=3)
