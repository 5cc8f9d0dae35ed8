"""What a newcomer meets: every command's --help in both spellings, the same flag names everywhere,
honest progress, resumes that read the run's own settings, and the one-line messages around them."""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from jobs import CORPUS, TINY_MODEL, tiny_pretrain_config, write_labeled_splits
from tiny_checkpoint import make_checkpoint

from minilm.common import plots, progress
from minilm.common.errors import UserError
from minilm.common.run_dir import check_out_dir
from minilm.reviews import world
from minilm.text.labeled import stratified_holdout
from minilm.tools import attention_map, evaluate, generate, metrics, predict
from minilm.train import finetune, pretrain
from minilm.train.config import FinetuneConfig, PretrainConfig
from minilm.train.trainer import OptimSettings, Trainer, planned_steps

ROOT = Path(__file__).resolve().parent.parent
# command -> (module of `python -m`, the function its console script calls)
COMMANDS = {"pretrain": pretrain.cli, "finetune": finetune.cli, "generate": generate.cli,
            "evaluate": evaluate.cli, "attention-map": attention_map.cli, "predict": predict.cli}


def console_scripts() -> dict[str, str]:
    """[project.scripts] of pyproject.toml: name -> "module:function"."""
    section = (ROOT / "pyproject.toml").read_text().split("[project.scripts]")[1].split("\n[")[0]
    return dict(re.findall(r'^(\S+)\s*=\s*"([^"]+)"', section, re.MULTILINE))


def test_every_command_has_a_console_script_and_a_python_m_shim():
    scripts = console_scripts()
    for command, function in COMMANDS.items():
        assert scripts[f"minilm-{command}"] == f"{function.__module__}:cli"
        assert (ROOT / "minilm" / f"{command.replace('-', '_')}.py").is_file()


@pytest.mark.parametrize("command", COMMANDS)
def test_help_works_as_python_m_and_as_console_script(command, capsys, monkeypatch):
    module = f"minilm.{command.replace('-', '_')}"
    shown = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True, cwd=ROOT,
                           timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith(f"usage: python -m {module} ")
    # The console script calls cli() with sys.argv[0] = its own path: usage shows that name.
    monkeypatch.setattr(sys, "argv", [f"/venv/bin/minilm-{command}"])
    with pytest.raises(SystemExit) as exit_info:
        COMMANDS[command](["--help"])
    assert exit_info.value.code == 0
    help_text = capsys.readouterr().out
    assert help_text.startswith(f"usage: minilm-{command} ")
    assert "--device DEVICE" in help_text


def test_old_script_names_stay_in_usage(capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["train_pretrain.py"])
    with pytest.raises(SystemExit):
        pretrain.cli(["--help"])
    out = capsys.readouterr().out
    assert out.startswith("usage: train_pretrain.py ")
    assert "{tiny,small,medium,gpt2-small}" in out and "PRESET" not in out  # the choices, not a placeholder


@pytest.mark.parametrize("parse,argv,field,value", [
    (finetune.parse_args, ["--init", "dir"], "init", "dir"),
    (finetune.parse_args, ["--ckpt", "dir"], "init", "dir"),
    (generate.parse_args, ["--prompt", "hi"], "text", "hi"),
    (generate.parse_args, ["--text", "hi"], "text", "hi"),
    (generate.parse_args, ["--prompt-file", "f"], "text_file", "f"),
    (attention_map.parse_args, ["--text", "a", "--out", "x.png"], "png", "x.png"),
    (predict.parse_args, ["--predict", "a", "b"], "text", ["a", "b"]),
    (predict.parse_args, ["--text", "a"], "text", ["a"]),
])
def test_old_flag_names_are_aliases_of_the_shared_ones(parse, argv, field, value):
    assert getattr(parse(argv), field) == value


def test_device_defaults_to_auto_everywhere():
    configs = [pretrain.parse_args([]), finetune.parse_args([]), generate.parse_args([]),
               evaluate.parse_args(["--data", "x"]), attention_map.parse_args(["--text", "x"]), predict.parse_args([])]
    assert [c.device for c in configs] == ["auto"] * 6


def test_default_run_is_a_step_budget_and_warmup_scales_to_short_runs():
    default = PretrainConfig()
    assert default.max_time == 0 and 800 <= default.max_steps <= 1000
    assert PretrainConfig(max_steps=6).warmup_steps == 0  # 10% of 6
    assert PretrainConfig(max_steps=50).warmup_steps == 5
    assert PretrainConfig(max_steps=5000).warmup_steps == 100
    assert PretrainConfig(max_steps=6, warmup_steps=3).warmup_steps == 3  # the user's choice stands
    assert pretrain.parse_args(["--max-steps", "6"]).warmup_steps == 0


def tiny_argv(out: Path) -> list[str]:
    model = [f"--{k.replace('_', '-')}={v}" for k, v in TINY_MODEL.items()]
    return ["--data", str(CORPUS), "--out", str(out), "--preset", "tiny", "--vocab-size", "300", "--batch-size", "4",
            "--eval-every", "3", "--eval-batches", "2", "--save-every", "3", "--num-samples", "1", "--device", "cpu",
            *model]


def test_resume_reads_the_runs_settings_and_only_lets_extend_it(tmp_path, capsys):
    out = tmp_path / "run"
    pretrain.cli([*tiny_argv(out), "--max-steps", "6", "--lr", "0.002"])
    assert "next: fine-tune it as a classifier:" in capsys.readouterr().out
    cfg = pretrain.parse_args(["--resume", "--out", str(out), "--max-steps", "9"])
    assert (cfg.max_steps, cfg.lr, cfg.batch_size, cfg.model["d_model"], cfg.resume) == (9, 0.002, 4, 32, True)
    pretrain.cli(["--resume", "--out", str(out), "--max-steps", "9"])
    assert json.loads((out / "report.json").read_text())["steps"] == 9
    with pytest.raises(SystemExit) as exit_info:
        pretrain.cli(["--resume", "--out", str(out), "--lr", "0.1", "--d-model", "64"])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and len(err.splitlines()) == 1
    assert "--lr 0.1 (the run has 0.002)" in err and "--d-model 64 (the run has 32)" in err
    # The value it already has is no change: accepted.
    assert pretrain.parse_args(["--resume", "--out", str(out), "--lr", "0.002"]).lr == 0.002


def test_a_time_boxed_bar_ends_at_100_percent(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(progress, "is_terminal", lambda: True)  # a real tqdm bar, written to stderr
    pretrain.run(tiny_pretrain_config(tmp_path / "t", max_steps=100_000, max_time=0.02, warmup_steps=0,
                                      eval_every=100_000, save_every=100_000))
    bar = capsys.readouterr().err.split("\r")[-1]
    steps = json.loads((tmp_path / "t" / "report.json").read_text())["steps"]
    assert steps < 100_000 and "100%" in bar and f"{steps}/{steps}" in bar


def test_planned_steps_follow_whichever_budget_governs():
    import torch

    def trainer(max_steps, max_time, steps, elapsed):
        t = Trainer(torch.nn.Linear(2, 2), OptimSettings(1e-3, 0.0, 0, max_steps, max_time, 0.0, 0.0),
                    torch.device("cpu"), torch.float32)
        t.step_count, t.elapsed = steps, elapsed
        return t

    assert planned_steps(trainer(900, 0.0, 10, 5.0)) == 900
    assert planned_steps(trainer(900, 1.0, 10, 6.0)) == 100  # 10 steps in 6 s: 100 fit in a minute
    assert planned_steps(trainer(900, 1.0, 10, 0.1)) == 900  # the steps run out first
    assert planned_steps(trainer(900, 1.0, 57, 60.0)) == 57  # done: exactly the steps taken
    # fine-tuning starts no epoch in the last 1% of its minutes (only lr-floor steps would be left)
    assert finetune.clock_nearly_out(trainer(900, 1.0, 99, 59.5)) and not finetune.clock_nearly_out(
        trainer(900, 1.0, 99, 59.0))
    assert not finetune.clock_nearly_out(trainer(900, 0.0, 899, 0.0))  # a step budget runs to its last step


def test_piped_output_has_no_carriage_returns_and_logs_long_steps(tmp_path):
    argv = [sys.executable, "train_pretrain.py", *tiny_argv(tmp_path / "p"), "--max-steps", "4"]
    done = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "\r" not in done.stdout + done.stderr
    assert "eta: " not in done.stdout  # 4 steps: too few to time


def test_log_lines_say_where_a_long_step_is(capsys):
    lines = progress.LogLines(total=10, desc="evaluating test", unit="batch", every=0.0)
    lines.update(4)
    lines.close()
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("evaluating test: 4/10 batch (40%)") and len(err) == 2
    quiet = progress.LogLines(total=10, desc="short", every=3600.0)
    quiet.update(10)
    quiet.close()
    assert capsys.readouterr().err == ""  # a short step adds nothing to the log


def test_fine_tuning_into_a_used_dir_does_not_suggest_resume(tmp_path):
    (tmp_path / "model.pt").write_bytes(b"x")
    with pytest.raises(UserError) as err:
        check_out_dir(tmp_path, resume=False, overwrite=False, can_resume=False)
    assert "--resume" not in str(err.value) and "--overwrite" in str(err.value)


def test_predict_on_a_pretraining_dir_gives_advice_that_works(tmp_path, capsys):
    ckpt = make_checkpoint(tmp_path / "lm")
    with pytest.raises(SystemExit):
        predict.cli(["--ckpt", str(ckpt), "--text", "hello"])
    err = capsys.readouterr().err
    suggested = re.search(r"--out (\S+)`", err).group(1)
    assert f"--ckpt {ckpt} " in err and not Path(suggested).exists()  # a fresh dir: fine-tuning accepts it


def test_predict_command_classifies_with_a_fine_tuned_dir(tmp_path, capsys):
    ckpt = make_checkpoint(tmp_path / "ft", "finetune")
    (ckpt / "labels.json").write_text(json.dumps({"labels": ["negative", "positive"]}))
    predict.cli(["--ckpt", str(ckpt), "--text", "the soup", "the waiter", "--device", "cpu"])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[0].split()[0] in ("negative", "positive")


def test_stratified_holdout_keeps_the_label_mix_and_is_seeded():
    labels = ["a"] * 80 + ["b"] * 20
    kept, held = stratified_holdout(labels, 0.1, seed=3)
    assert sorted(kept + held) == list(range(100))
    assert [labels[i] for i in held].count("a") == 8 and [labels[i] for i in held].count("b") == 2
    assert stratified_holdout(labels, 0.1, seed=3) == (kept, held)
    assert stratified_holdout(labels, 0.1, seed=4) != (kept, held)


def test_one_labeled_file_is_enough_with_fractions(tmp_path, capsys):
    splits = write_labeled_splits(tmp_path, sizes=(200, 2, 2))
    pretrain.run(tiny_pretrain_config(tmp_path / "lm", max_steps=4))
    cfg = FinetuneConfig(init=str(tmp_path / "lm"), train=str(splits["train"]), valid_fraction=0.1,
                         test_fraction=0.2, out=str(tmp_path / "ft"), epochs=1, device="cpu")
    report = finetune.run(cfg)
    out = capsys.readouterr().out
    assert "test: 40 examples held out" in out and "valid: 16 examples held out" in out
    assert sum(report.splits["test"]["per_class"][name]["support"] for name in ("negative", "positive")) == 40
    assert "next: classify new text:" in out
    with pytest.raises(UserError, match="--valid and --valid-fraction both given"):
        finetune.run(FinetuneConfig(init=str(tmp_path / "lm"), train=str(splits["train"]),
                                    valid=str(splits["valid"]), valid_fraction=0.1, test_fraction=0.1,
                                    out=str(tmp_path / "ft2"), device="cpu"))


def test_tensorboard_missing_is_one_line_before_any_work(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails as if not installed
    with pytest.raises(SystemExit) as exit_info:
        pretrain.cli([*tiny_argv(tmp_path / "tb"), "--max-steps", "3", "--tensorboard"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and 'pip install "minilm[tensorboard]"' in err and err.count("\n") == 1
    assert not (tmp_path / "tb").exists()


def test_tensorboard_gets_every_metric_row(tmp_path, monkeypatch):
    written = []

    class FakeWriter:
        def __init__(self, log_dir):
            self.log_dir = log_dir

        def add_scalar(self, name, value, step):
            written.append((name, step))

        def flush(self):
            pass

        def close(self):
            pass

    fake = type(sys)("torch.utils.tensorboard")
    fake.SummaryWriter = FakeWriter
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", fake)
    pretrain.run(tiny_pretrain_config(tmp_path / "tb", max_steps=6, eval_every=3, tensorboard=True))
    assert ("val_loss", 3) in written and ("val_loss", 6) in written and ("train_loss", 6) in written


def many_class_report(k: int = 20) -> dict:
    rng = np.random.default_rng(0)
    gold = rng.integers(0, k, 400)
    predicted = np.where(rng.random(400) < 0.7, gold, (gold + 1) % k)
    return metrics.classification_report(gold.tolist(), predicted.tolist(), [f"intent_{i}" for i in range(k)])


def test_many_classes_print_a_summary_and_draw_the_matrix(tmp_path):
    report = many_class_report()
    text = metrics.format_report(report, "test")
    assert len(text.splitlines()) == 3 and max(len(line) for line in text.splitlines()) < 400
    assert "weakest classes" in text and "most frequent confusions" in text and " -> " in text
    assert metrics.format_report(many_class_report(3), "test").count("\n") > 5  # few classes: the full tables
    pytest.importorskip("matplotlib")
    assert plots.plot_confusion(report["confusion_matrix"], report["labels"], tmp_path / "c.png", "test")
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"


def test_a_skipped_plot_is_said_once(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(plots, "pyplot", lambda: None)
    plots.note_skipped_plots.cache_clear()
    rows = [{"step": 1, "loss": 2.0}]
    assert not plots.plot_curves(rows, "step", ["loss"], tmp_path / "a.png", "t")
    assert not plots.plot_curves(rows, "step", ["loss"], tmp_path / "a.png", "t")
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and 'pip install "minilm[plot]"' in err


def test_default_data_goes_to_a_cache_outside_a_checkout(tmp_path, monkeypatch):
    monkeypatch.delenv("MINILM_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    assert world.default_data_dir() == tmp_path / "cache" / "minilm" / "reviews"
    monkeypatch.chdir(ROOT)
    assert world.default_data_dir() == Path("data/reviews")  # a checkout: where the README shows it
    monkeypatch.setenv("MINILM_DATA", str(tmp_path / "mine"))
    assert world.default_data_dir() == tmp_path / "mine"
