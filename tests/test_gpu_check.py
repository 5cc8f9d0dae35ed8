"""The prepared device check: its --dry-run runs every check's plumbing on the CPU at tiny sizes."""

import json

import pytest
import torch

from benchmarks import gpu_check
from benchmarks.common import DEFAULT_RESULTS


@pytest.mark.slow
def test_the_dry_run_passes_every_check_and_writes_the_report(tmp_path, capsys):
    before = DEFAULT_RESULTS.read_bytes()
    assert gpu_check.main(["--dry-run", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert [c["name"] for c in report["checks"]] == list(gpu_check.CHECKS)
    assert all(c["passed"] for c in report["checks"]), report
    markdown = (tmp_path / "report.md").read_text()
    assert "GPU device check (dry run on the CPU)" in markdown and "| resume | pass |" in markdown
    assert all((tmp_path / "logs" / f"{name}.log").is_file() for name in gpu_check.CHECKS)
    assert DEFAULT_RESULTS.read_bytes() == before  # only --record appends to RESULTS.md


def test_a_failing_check_is_reported_and_fails_the_exit_status(tmp_path, monkeypatch):
    def broken(ctx):
        raise RuntimeError("CUDA error: an illegal memory access")

    monkeypatch.setitem(gpu_check.CHECKS, "generation", broken)
    assert gpu_check.main(["--dry-run", "--only", "generation", "--out", str(tmp_path)]) == 1
    check = json.loads((tmp_path / "report.json").read_text())["checks"][0]
    assert not check["passed"] and "illegal memory access" in check["details"]["error"]
    assert "Traceback" in (tmp_path / "logs" / "generation.log").read_text()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_without_cuda_it_says_so_in_one_line(tmp_path, capsys):
    assert gpu_check.main(["--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: no CUDA GPU")
    assert not (tmp_path / "o").exists()  # nothing written
