"""The pretraining job end to end: outputs, learning, exact resume, safe saves, DDP, bad flags."""

import csv
import json
import math
import os
import re
import socket

import pytest
import torch
import torch.multiprocessing as mp
from jobs import CORPUS, tiny_pretrain_config

from minilm.common import files
from minilm.common.errors import UserError
from minilm.common.files import load_torch
from minilm.train import pretrain


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("pretrain")
    report = pretrain.run(tiny_pretrain_config(out))
    return out, report


def test_a_tiny_run_writes_a_complete_out_dir_and_learns(finished_run):
    out, report = finished_run
    for name in ("config.json", "model.pt", "tokenizer.model", "trainer_state.pt", "metrics.csv", "samples.txt",
                 "report.json"):
        assert (out / name).is_file(), name
    config = json.loads((out / "config.json").read_text())
    assert config["kind"] == "pretrain" and config["model"]["d_model"] == 32
    state = torch.load(out / "model.pt", weights_only=True)  # a plain state_dict
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert [int(r["step"]) for r in rows] == [4, 8, 12]
    assert float(rows[-1]["val_loss"]) < float(rows[0]["val_loss"])
    assert report.best_val_loss < math.log(300)  # better than a uniform guess
    assert report.steps == 12 and report.tokens_seen == 12 * 4 * 32


class Crash(Exception):
    """Stands in for kill -9: the process stops between two steps, nothing more is written."""


def test_resume_after_a_crash_is_bit_identical(tmp_path, monkeypatch):
    straight = tmp_path / "straight"
    pretrain.run(tiny_pretrain_config(straight, save_every=3))

    crashed = tmp_path / "crashed"
    real_step = pretrain.Trainer.step

    def step_then_crash(self, *args, **kwargs):
        if self.step_count == 7:  # the last save was at step 6
            raise Crash
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(pretrain.Trainer, "step", step_then_crash)
    with pytest.raises(Crash):
        pretrain.run(tiny_pretrain_config(crashed, save_every=3))
    monkeypatch.setattr(pretrain.Trainer, "step", real_step)
    pretrain.run(tiny_pretrain_config(crashed, save_every=3, resume=True))

    a, b = load_torch(straight / "trainer_state.pt"), load_torch(crashed / "trainer_state.pt")
    for name, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][name]), name
    def losses(out):  # everything but the wall-clock columns
        return [{k: v for k, v in row.items() if k not in ("elapsed_s", "tokens_per_s")}
                for row in csv.DictReader((out / "metrics.csv").open())]

    assert losses(straight) == losses(crashed)


def test_a_failure_during_save_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    out = tmp_path / "run"
    saves = {"n": 0}
    real_save = torch.save

    def half_written_save(obj, path, *args, **kwargs):
        if str(path).endswith(".tmp") and "trainer_state" in str(path):
            saves["n"] += 1
            if saves["n"] == 2:  # the second trainer_state save dies halfway through
                with open(path, "wb") as f:
                    f.write(b"half a checkpoint")
                # what torch.save raises when the disk fills up
                raise RuntimeError("[enforce fail at inline_container.cc:783] . PytorchStreamWriter failed "
                                   "writing file data/3: file write failed")
        return real_save(obj, path, *args, **kwargs)

    monkeypatch.setattr(files.torch, "save", half_written_save)
    with pytest.raises(UserError, match="disk full or not writable: .*trainer_state.pt"):
        pretrain.run(tiny_pretrain_config(out))
    state = load_torch(out / "trainer_state.pt")
    assert state["trainer"]["step"] == 4  # the first save, whole
    assert not [p for p in os.listdir(out) if p.endswith(".tmp")]  # no half file left behind
    monkeypatch.setattr(files.torch, "save", real_save)
    pretrain.run(tiny_pretrain_config(out, resume=True))  # and the run can go on from it
    assert load_torch(out / "trainer_state.pt")["trainer"]["step"] == 12


def test_nan_loss_stops_with_the_last_good_checkpoint(tmp_path, monkeypatch):
    real_loss = pretrain.lm_loss
    calls = {"n": 0}

    def loss_that_explodes(model, batch):
        calls["n"] += 1
        loss = real_loss(model, batch)
        return loss * float("nan") if calls["n"] > 6 else loss

    monkeypatch.setattr(pretrain, "lm_loss", loss_that_explodes)
    with pytest.raises(UserError, match=r"loss became nan at step 7.*trainer_state.pt \(step 4\)"):
        pretrain.run(tiny_pretrain_config(tmp_path / "nan"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world_size: int, port: int, out: str) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    pretrain.run(tiny_pretrain_config(out, batch_size=2, max_steps=6, save_every=6, eval_every=6, device="cpu",
                                      optimizer="adamw"))


@pytest.mark.slow
def test_ddp_with_two_processes_matches_one_process(tmp_path):  # gloo on CPUs, even when a GPU is here
    single = tmp_path / "single"
    # AdamW: Muon's orthogonalisation turns the last bits of a nearly rank-deficient momentum into
    # full-size steps, so two summation orders drift apart by far more than rounding. What this test
    # checks is the data-parallel gradient, which the optimizer only consumes.
    pretrain.run(tiny_pretrain_config(single, batch_size=4, max_steps=6, save_every=6, eval_every=6, device="cpu",
                                      optimizer="adamw"))
    mp.spawn(_ddp_worker, args=(2, _free_port(), str(tmp_path / "ddp")), nprocs=2, join=True)
    a, b = load_torch(single / "trainer_state.pt"), load_torch(tmp_path / "ddp" / "trainer_state.pt")
    # Two processes sum the gradient in another order: rounding differences of ~1e-7, which Adam's
    # division by √v turns into up to a few 1e-4 for rarely used weights after 6 steps at lr 6e-3.
    # A real fault (ranks training apart, a gradient not exchanged) moves weights by ~lr per step.
    for name, tensor in a["model"].items():
        torch.testing.assert_close(b["model"][name], tensor, rtol=1e-2, atol=5e-4)


@pytest.mark.parametrize("argv,message", [
    (["--d-model", "30", "--n-head", "4"], r"d_model \(30\) must be divisible by n_head \(4\)"),
    (["--lr", "-1"], "--lr must be positive"),
    (["--resume"], "nothing to resume"),
])
def test_bad_flags_are_one_clear_line(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        pretrain.cli(["--data", str(tmp_path / "nowhere.txt"), "--out", str(tmp_path / "o"), *argv])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert re.search(message, err), err


def test_unknown_preset_is_refused(capsys):
    with pytest.raises(SystemExit) as exit_info:
        pretrain.cli(["--preset", "huge"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'huge'" in capsys.readouterr().err


def test_an_existing_run_is_not_overwritten_by_accident(finished_run, capsys):
    out, _ = finished_run
    before = (out / "model.pt").read_bytes()
    with pytest.raises(SystemExit):
        pretrain.cli(["--out", str(out), "--preset", "tiny"])
    assert "already holds a saved run" in capsys.readouterr().err
    assert (out / "model.pt").read_bytes() == before


def test_resume_refuses_flags_that_describe_another_run(finished_run):
    out, _ = finished_run
    with pytest.raises(UserError, match="batch_size: saved 4, now 8"):
        pretrain.run(tiny_pretrain_config(out, resume=True, batch_size=8))
    with pytest.raises(UserError, match="data: saved"):
        pretrain.run(tiny_pretrain_config(out, resume=True, data="other.txt"))


def test_val_bpb_equals_the_evaluate_commands_on_the_val_split(finished_run, tmp_path):
    # Regression: val_bpb counted the decoded stream's bytes (a leading-space marker per document
    # and one per end-of-document too many) and read ~1 % low. Score the same val documents with
    # the evaluate command's code: same bytes, same tokens, so the same loss -> bpb conversion.
    from minilm.checkpoint import load_lm
    from minilm.text.corpus import iter_documents
    from minilm.text.lm_data import is_val_document
    from minilm.tools.evaluate import evaluate_text

    out, _ = finished_run
    meta = json.loads((out / "tokens" / "meta.json").read_text())
    val_docs = [doc for i, doc in enumerate(iter_documents(CORPUS)) if is_val_document(i, meta["val_fraction"])]
    model, tokenizer = load_lm(out, torch.device("cpu"))
    result = evaluate_text(model, tokenizer, val_docs)
    assert result["bytes"] == meta["val_bytes"] and result["tokens"] == meta["val_tokens"] - 1
    with open(out / "metrics.csv") as f:
        row = next(csv.DictReader(f))
    assert float(row["val_bpb"]) / float(row["val_loss"]) == pytest.approx(
        result["bits_per_byte"] / result["loss"], rel=1e-4)
