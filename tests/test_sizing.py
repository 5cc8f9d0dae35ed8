"""--max-time N without --max-steps: train N minutes, and without a size flag, a model sized for them."""

import json

import pytest
import torch
from conftest import tiny_config
from jobs import CORPUS

from minilm.common.errors import UserError
from minilm.train import pretrain, sizing
from minilm.train.trainer import OptimSettings

CPU = torch.device("cpu")
SETTINGS = OptimSettings(lr=1e-3, min_lr=1e-4, warmup_steps=0, max_steps=0, max_time=1.0, weight_decay=0.1,
                         grad_clip=1.0)


def fake_speeds(monkeypatch, tokens_per_s: dict[int, float]) -> list[int]:
    """Replace the measurement: candidate i (by index) trains at tokens_per_s[i]; returns the indices measured."""
    measured = []

    def measure(cfg, settings, batch_size, device, dtype):
        i = next(i for i, c in enumerate(sizing.CANDIDATES) if (c[0], c[1]) == (cfg.n_layer, cfg.d_model))
        measured.append(i)
        params = sizing.block_parameters(sizing.MiniLM(cfg))
        return tokens_per_s[i], params

    monkeypatch.setattr(sizing, "measure_tokens_per_s", measure)
    return measured


def params_of(i: int) -> int:
    n_layer, d_model, context = sizing.CANDIDATES[i]
    cfg = tiny_config(**sizing.shape_of(n_layer, d_model, context), d_ff=0)
    return sizing.block_parameters(sizing.MiniLM(cfg))


def test_the_largest_size_that_gets_enough_tokens_per_parameter_wins(monkeypatch):
    minutes, rule = 2.0, sizing.TOKENS_PER_PARAM
    # candidates 0..2 get 1.25 times the rule's tokens per parameter in the budget, candidate 3 half of it
    speeds = {i: 1.25 * rule * params_of(i) / (60 * minutes) for i in range(3)}
    speeds[3] = 0.5 * rule * params_of(3) / (60 * minutes)
    measured = fake_speeds(monkeypatch, speeds)
    chosen, seen = sizing.choose_size(tiny_config(), SETTINGS, 4, minutes, CPU, torch.float32)
    assert (chosen.shape["n_layer"], chosen.shape["d_model"]) == sizing.CANDIDATES[2][:2]
    assert measured == [0, 1, 2, 3]  # the search stops at the first candidate that falls short
    assert chosen.tokens_per_param == pytest.approx(1.25 * rule)
    text = sizing.explain_size(chosen, seen, minutes)
    assert "4x96" in text and "4 layers x 128 wide" in text and f">= {rule:g}" in text


def test_with_no_candidate_fitting_the_smallest_is_taken(monkeypatch):
    fake_speeds(monkeypatch, {0: 1.0, 1: 1.0})
    chosen, seen = sizing.choose_size(tiny_config(), SETTINGS, 4, 1.0, CPU, torch.float32)
    assert chosen.shape == sizing.shape_of(*sizing.CANDIDATES[0]) and len(seen) == 1


def test_processes_multiply_the_budget(monkeypatch):
    fake_speeds(monkeypatch, {0: 1000.0, 1: 1000.0})
    chosen, _ = sizing.choose_size(tiny_config(), SETTINGS, 4, 1.0, CPU, torch.float32, processes=4)
    assert chosen.budget_tokens == 4 * 1000.0 * 60


def test_measuring_a_size_leaves_the_random_state_alone():
    torch.manual_seed(5)
    before = torch.random.get_rng_state()
    tok_s, params = sizing.measure_tokens_per_s(tiny_config(), SETTINGS, 2, CPU, torch.float32)
    assert torch.equal(torch.random.get_rng_state(), before)
    assert tok_s > 0 and params == sizing.block_parameters(sizing.MiniLM(tiny_config()))


@pytest.mark.parametrize("argv, auto, max_steps", [
    (["--max-time", "5"], True, 0),  # a time budget alone: train 5 minutes, sized for them
    (["--max-time", "5", "--preset", "small"], False, 0),  # the size is the user's; still 5 minutes
    (["--max-time", "5", "--d-model", "64"], False, 0),
    (["--max-time", "5", "--max-steps", "100"], False, 100),  # both budgets given: whichever ends first
    (["--max-time", "5", "--no-auto-size"], False, 0),
    ([], False, 900),  # the embedded demo's fixed step budget
])
def test_a_time_budget_alone_means_train_that_long_at_a_size_chosen_for_it(argv, auto, max_steps):
    cfg = pretrain.parse_args(["--out", "x", *argv])
    assert (cfg.auto_size, cfg.max_steps) == (auto, max_steps)


@pytest.mark.parametrize("argv, message", [
    (["--auto-size", "--max-time", "5", "--preset", "small"], "--preset sets it"),
    (["--auto-size"], "also give --max-time"),
])
def test_auto_size_clashes_are_refused(argv, message):
    with pytest.raises(UserError, match=message):
        pretrain.parse_args(["--out", "x", *argv])


def test_an_auto_sized_run_records_its_shape_and_resumes_with_it(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    monkeypatch.setattr(sizing, "CANDIDATES", [(1, 32, 16), (2, 64, 32)])
    common = ["--data", str(CORPUS), "--out", str(out), "--vocab-size", "300", "--batch-size", "4",
              "--eval-every", "5", "--eval-batches", "2", "--num-samples", "0"]
    pretrain.run(pretrain.parse_args([*common, "--max-time", "0.01"]))
    printed = capsys.readouterr().out
    assert "auto size for --max-time 0.01" in printed and "1x32" in printed
    saved = json.loads((out / "config.json").read_text())
    assert saved["job"]["auto_size"] and saved["job"]["max_steps"] == 0
    assert (saved["model"]["n_layer"], saved["model"]["d_model"]) == (1, 32)  # 2x64 cannot get 20 tokens/param
    # a budget well past the first run's: on a busy machine its last step can end long after 0.01 min
    pretrain.run(pretrain.parse_args(["--out", str(out), "--resume", "--max-time", "0.05"]))
    assert "auto size" not in capsys.readouterr().out  # the saved shape, not a new choice
    assert json.loads((out / "config.json").read_text())["model"] == saved["model"]
