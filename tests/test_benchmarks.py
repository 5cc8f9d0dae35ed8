"""Smoke tests: every benchmark runs one tiny iteration and writes its section (no timing asserted)."""

import argparse

import pytest
import torch

from benchmarks import common, finetune, generation, mfu_targets, peak, run_all, scaling, train, trainer_step
from benchmarks.arms import REPO
from benchmarks.common import DEFAULT_RESULTS, format_table

SECTION_TITLES = {
    peak: "Machine peak",
    train: "Training throughput by preset",
    mfu_targets: "CPU MFU targets and fixes",
    generation: "Generation: KV cache vs none",
    scaling: "Scaling: context, width, depth",
    finetune: "Fine-tuning and single-sentence latency",
    trainer_step: "Trainer step: freed memory kept",
}


@pytest.fixture(autouse=True)
def _restore_threads():
    """--threads changes torch's global thread count; give the other tests theirs back."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def real_results_untouched():
    before = DEFAULT_RESULTS.read_bytes() if DEFAULT_RESULTS.exists() else None
    yield
    after = DEFAULT_RESULTS.read_bytes() if DEFAULT_RESULTS.exists() else None
    assert after == before, "a smoke test wrote to benchmarks/RESULTS.md"


@pytest.mark.parametrize("module", list(SECTION_TITLES), ids=lambda m: m.__name__.split(".")[-1])
def test_benchmark_writes_its_section(module, tmp_path, real_results_untouched):
    results = tmp_path / "RESULTS.md"
    module.main(["--smoke", "--threads", "1", "--results", str(results)])
    text = results.read_text()
    assert text.startswith("# Benchmark results")
    assert f"## {SECTION_TITLES[module]}" in text
    assert "torch " + torch.__version__ in text and "- command: `" in text
    assert "|---|" in text  # at least one table


def test_no_record_writes_nothing(tmp_path, real_results_untouched):
    results = tmp_path / "RESULTS.md"
    peak.main(["--smoke", "--no-record", "--results", str(results)])
    assert not results.exists()


def test_run_all_only_runs_the_chosen_benchmarks(tmp_path, real_results_untouched):
    results = tmp_path / "RESULTS.md"
    run_all.main(["--smoke", "--threads", "1", "--results", str(results), "--only", "peak,generation"])
    text = results.read_text()
    assert text.count("\n## ") == 2
    assert "## Machine peak" in text and "## Generation" in text


def test_run_all_rejects_an_unknown_benchmark():
    with pytest.raises(SystemExit):
        run_all.main(["--smoke", "--only", "nonsense"])


def test_format_table_has_a_row_per_item():
    table = format_table(["a", "b"], [[1, 0.12345], ["x", 12345.6]])
    assert table.splitlines() == ["| a | b |", "|---|---|", "| 1 | 0.123 |", "| x | 12,346 |"]


@pytest.mark.parametrize("name,dtype,tflops", [
    ("NVIDIA H100 80GB HBM3", torch.bfloat16, 989),
    ("NVIDIA H100 PCIe", torch.bfloat16, 756),
    ("NVIDIA H200", torch.float32, 495),  # fp32 matmuls run as TF32
    ("NVIDIA A100-SXM4-80GB", torch.float16, 312),
    ("NVIDIA A10", torch.bfloat16, 125),  # not the A100's row
    ("NVIDIA A10G", torch.bfloat16, None),  # not the A10's either: unlisted
    ("Tesla T4", torch.float16, 65),
    ("Tesla T4", torch.bfloat16, None),  # no bf16 tensor cores
    ("Some Future GPU", torch.bfloat16, None),
])
def test_datasheet_peaks_by_device_name(name, dtype, tflops):
    found = peak.datasheet_peak(name, dtype)
    assert found == (tflops * 1e12 if tflops else None)


def test_cpu_mfu_targets_run_on_the_cpu_even_when_a_gpu_is_asked_for(tmp_path, real_results_untouched):
    results = tmp_path / "RESULTS.md"
    mfu_targets.main(["--smoke", "--threads", "1", "--device", "cuda", "--no-profile", "--results", str(results)])
    assert "GPU: none (run on CPU)" in results.read_text()


def test_gpu_benchmarks_use_tf32_like_the_jobs(monkeypatch):
    calls = []
    monkeypatch.setattr(common, "enable_tf32", lambda: calls.append("tf32"))
    args = argparse.Namespace(threads=0, device="cuda")
    assert common.setup(args) == torch.device("cuda") and calls == ["tf32"]
    common.setup(argparse.Namespace(threads=0, device="cpu"))
    assert calls == ["tf32"]


needs_git = pytest.mark.skipif(not (REPO / ".git").exists(), reason="--before exports a commit with git")


@needs_git
def test_before_times_that_commits_code_not_todays(tmp_path):
    """The 'before' process must import the exported commit's minilm: make that one's step slow."""
    tree = trainer_step.export_commit("HEAD", tmp_path)
    trainer_py = tree / "minilm" / "train" / "trainer.py"
    trainer_py.write_text(trainer_py.read_text() + "\n\nimport time as _time\n_step = Trainer.step\n"
                          "Trainer.step = lambda self, *a, **k: (_time.sleep(0.3), _step(self, *a, **k))[1]\n")
    args = argparse.Namespace(smoke=True, quick=False, threads=1, device="cpu")
    assert trainer_step.measure(tree, "smoke", "adamw", None, args) >= 0.3
    assert trainer_step.measure(REPO, "smoke", "adamw", None, args) < 0.3


@needs_git
def test_before_writes_its_section(tmp_path, real_results_untouched):
    results = tmp_path / "RESULTS.md"
    trainer_step.main(["--smoke", "--threads", "1", "--before", "HEAD", "--rounds", "1", "--results", str(results)])
    text = results.read_text()
    assert "## Trainer step: now against HEAD" in text and "| smoke |" in text


def test_parallel_arms_own_load_is_not_called_competition(monkeypatch):
    """Two one-thread arms at once load a 2-core machine to ~2 by themselves: no warning for that."""
    monkeypatch.setattr(common.os, "getloadavg", lambda: (2.05, 2.0, 2.0))
    torch.set_num_threads(1)
    device = torch.device("cpu")
    assert "competing" in "\n".join(common.machine_lines(device))
    assert "competing" not in "\n".join(common.machine_lines(device, processes=2))


@needs_git
def test_before_a_commit_that_does_not_exist_is_one_line(tmp_path, real_results_untouched):
    with pytest.raises(SystemExit, match="not a commit"):
        trainer_step.main(["--smoke", "--before", "no-such-commit", "--results", str(tmp_path / "R.md")])
