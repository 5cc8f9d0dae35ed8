"""The prepared device check: what minilm promises on a GPU, exercised by one command.

    python -m benchmarks.gpu_check                 # on a CUDA machine: about 6 minutes, at most 8, on one GPU
    python -m benchmarks.gpu_check --dry-run       # the same plumbing on the CPU at tiny sizes (CI runs it)
    python -m benchmarks.gpu_check --only trainer-bf16,resume    # a subset, e.g. after a fix

The checks, in order:

    tests          the test suite with MINILM_TEST_DEVICE=cuda (job tests on the GPU, cuda-marked tests run)
    trainer-bf16   a few hundred pretraining steps in bf16, gradient clipping on
    trainer-fp16   the same in fp16 with the GradScaler
    compile        --compile: its steps against the eager bf16 run
    generation     cached and uncached greedy generation agree on the GPU; tokens/s of each
    finetune       the classifier fine-tuned from the bf16 run, then --predict
    resume         a run killed mid-way and resumed ends where the uninterrupted run ends
    throughput     gpt2-small training steps: tokens/s, MFU against the measured and the datasheet peak

Each check's own output goes to OUT/logs/<check>.log; the results to OUT/report.md and
OUT/report.json (--record also appends the report to benchmarks/RESULTS.md). The exit status is 0
only when every check passed. Without CUDA, and without --dry-run, it says so in one line and exits 2.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import math
import os
import subprocess
import sys
import time
import traceback
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from unittest import mock

import torch

from benchmarks.common import DEFAULT_RESULTS, command_line, format_table, machine_lines
from benchmarks.peak import datasheet_mfu, sustained_matmul_flops
from benchmarks.workloads import PRESET_VOCAB, StepOptions, measure_lm_training, preset_config
from minilm.checkpoint import load_lm
from minilm.common.files import load_torch
from minilm.common.runtime import resolve_dtype
from minilm.reviews.world import generate
from minilm.train import finetune, pretrain
from minilm.train.config import FinetuneConfig, PretrainConfig

ROOT = Path(__file__).parent.parent


@dataclass
class Sizes:
    """How big each check is: the full sizes fit 8 minutes on one GPU, the dry-run ones seconds on a CPU."""

    documents: int  # unlabeled review documents to pretrain on
    labeled: int  # labeled training examples (valid and test get a quarter each)
    vocab: int
    model: dict  # the pretraining model's shape
    batch: int
    steps: int  # pretraining steps per precision
    compile_steps: int
    new_tokens: int  # generated per generation run
    finetune_steps: int
    resume: tuple[int, int, int]  # (steps, --save-every, the step the crash hits)
    throughput_preset: str
    throughput_batch: int
    peak_size: int  # square matmul the measured peak is timed on
    test_paths: list[str]
    test_timeout_s: int


FULL = Sizes(documents=20_000, labeled=2000, vocab=4096, model=dict(context_length=128, n_layer=4, n_head=4,
             d_model=256), batch=32, steps=300, compile_steps=100, new_tokens=96, finetune_steps=120,
             resume=(40, 10, 25), throughput_preset="gpt2-small", throughput_batch=8, peak_size=8192,
             test_paths=["tests"], test_timeout_s=240)
DRY = Sizes(documents=300, labeled=48, vocab=300, model=dict(context_length=32, n_layer=2, n_head=2, d_model=32),
            batch=4, steps=4, compile_steps=2, new_tokens=8, finetune_steps=3, resume=(4, 2, 3),
            throughput_preset="tiny", throughput_batch=2, peak_size=256,
            test_paths=["tests/test_runtime.py"], test_timeout_s=120)


@dataclass
class Context:
    """What the checks share: where to write, on what, how big, and what earlier checks made."""

    out: Path
    device: torch.device
    dry_run: bool
    sizes: Sizes
    data: dict[str, Path] = field(default_factory=dict)
    eager_tokens_per_s: float = 0.0  # from trainer-bf16, for the compile check


@dataclass
class Result:
    name: str
    passed: bool
    seconds: float
    details: dict


def pretrain_config(ctx: Context, name: str, **overrides) -> PretrainConfig:
    s = ctx.sizes
    values = dict(data=str(ctx.data["unlabeled"]), out=str(ctx.out / name), preset="small", vocab_size=s.vocab,
                  batch_size=s.batch, max_steps=s.steps, warmup_steps=max(1, s.steps // 10), max_time=0.0,
                  lr=1e-3, min_lr=1e-4, grad_clip=1.0, eval_every=max(1, s.steps // 3), eval_batches=4,
                  save_every=s.steps, num_samples=1, device=ctx.device.type, overwrite=True, model=dict(s.model))
    values.update(overrides)
    return PretrainConfig(**values)


def metrics(run_dir: Path) -> list[dict]:
    return list(csv.DictReader((run_dir / "metrics.csv").open()))


def check_tests(ctx: Context) -> tuple[bool, dict]:
    """The test suite in a child process with the job tests on this device; counts from its junit XML."""
    xml = ctx.out / "pytest.xml"
    env = {**os.environ, "MINILM_TEST_DEVICE": ctx.device.type}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={xml}",
               *ctx.sizes.test_paths]
    try:
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=ctx.sizes.test_timeout_s)
    except subprocess.TimeoutExpired:
        return False, {"error": f"the suite took longer than {ctx.sizes.test_timeout_s} s"}
    print(done.stdout + done.stderr)
    suite = ET.parse(xml).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    failed = [f"{case.get('classname')}::{case.get('name')}" for case in suite.iter("testcase")
              if case.find("failure") is not None or case.find("error") is not None]
    return done.returncode == 0, {**counts, "failed": failed[:10], "device": ctx.device.type}


def run_pretraining(ctx: Context, name: str, **overrides) -> dict:
    cfg = pretrain_config(ctx, name, **overrides)
    report = pretrain.run(cfg)
    rows = metrics(Path(cfg.out))
    return {"dtype": cfg.dtype, "steps": report.steps, "first_train_loss": float(rows[0]["train_loss"]),
            "last_train_loss": float(rows[-1]["train_loss"]), "best_val_loss": report.best_val_loss,
            "unigram_val_loss": report.unigram_val_loss, "tokens_per_s": report.tokens_seen / report.train_seconds,
            "train_seconds": report.train_seconds, "wall_seconds": report.wall_seconds}


def learned(ctx: Context, details: dict) -> bool:
    """Finite losses, and (at full size) better than the unigram baseline."""
    finite = all(math.isfinite(details[k]) for k in ("last_train_loss", "best_val_loss"))
    return finite and (ctx.dry_run or details["best_val_loss"] < details["unigram_val_loss"])


def gpu_only(ctx: Context, dtype: str) -> str:
    """dtype on the GPU; fp32 in a dry run (fp16 needs CUDA, and bf16 on a CPU is slow)."""
    return dtype if ctx.device.type == "cuda" else "fp32"


def check_trainer(dtype: str) -> Callable[[Context], tuple[bool, dict]]:
    def check(ctx: Context) -> tuple[bool, dict]:
        details = run_pretraining(ctx, f"pretrain-{dtype}", dtype=gpu_only(ctx, dtype))
        if dtype == "bf16":
            ctx.eager_tokens_per_s = details["tokens_per_s"]
        return learned(ctx, details), details
    return check


def check_compile(ctx: Context) -> tuple[bool, dict]:
    """--compile against the eager bf16 run; compiling on a CPU takes minutes, so a dry run skips it."""
    compiled = not ctx.dry_run
    details = run_pretraining(ctx, "pretrain-compiled", dtype=gpu_only(ctx, "bf16"), compile=compiled,
                              max_steps=ctx.sizes.compile_steps, eval_every=ctx.sizes.compile_steps,
                              save_every=ctx.sizes.compile_steps)
    details["compiled"] = compiled
    details["speedup_vs_eager"] = details["tokens_per_s"] / ctx.eager_tokens_per_s if ctx.eager_tokens_per_s else None
    finite = math.isfinite(details["last_train_loss"])
    return finite, details


def check_generation(ctx: Context) -> tuple[bool, dict]:
    """Greedy generation from the bf16 run's model, with and without the KV cache, in true fp32."""
    model, tokenizer = load_lm(ctx.out / "pretrain-bf16", ctx.device)
    start = torch.full((2, 1), tokenizer.bos_id, dtype=torch.long, device=ctx.device)
    n = min(ctx.sizes.new_tokens, model.cfg.context_length - 1)
    tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False  # TF32 rounding could flip a near-tie between the two
    outputs, rates = {}, {}
    try:
        for cached in (True, False):
            began = time.perf_counter()
            with torch.no_grad():
                outputs[cached] = model.generate(start, n, temperature=0.0, use_cache=cached)
            if ctx.device.type == "cuda":
                torch.cuda.synchronize(ctx.device)
            rates[cached] = 2 * n / (time.perf_counter() - began)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = tf32
    same = torch.equal(outputs[True], outputs[False])
    return same, {"new_tokens": n, "identical": same, "cached_tokens_per_s": rates[True],
                  "uncached_tokens_per_s": rates[False], "sample": tokenizer.decode(outputs[True][0, 1:].tolist())}


def check_finetune(ctx: Context) -> tuple[bool, dict]:
    """The classifier fine-tuned from the bf16 run on the review labels, then --predict on new text."""
    out = ctx.out / "finetune"
    d = ctx.data
    cfg = FinetuneConfig(init=str(ctx.out / "pretrain-bf16"), train=str(d["train"]), valid=str(d["valid"]),
                         test=str(d["test"]), transfer=str(d["transfer"]), out=str(out), epochs=100,
                         max_steps=ctx.sizes.finetune_steps, batch_size=32, lr=1e-3, warmup_steps=2,
                         device=ctx.device.type, overwrite=True)
    report = finetune.run(cfg)
    predicted = finetune.predict(FinetuneConfig(out=str(out), predict=["the soup was wonderful", "a dreadful room"],
                                                device=ctx.device.type))
    test = report.splits["test"]
    chance = 1 / len(test["per_class"])
    details = {"test_accuracy": test["accuracy"], "test_macro_f1": test["macro_f1"], "chance": chance,
               "predictions": str(predicted)[:300]}
    return ctx.dry_run or test["accuracy"] > chance, details


class Crash(Exception):
    """Stands in for a killed process: the run stops between two steps."""


def check_resume(ctx: Context) -> tuple[bool, dict]:
    """Kill a run after its last save, --resume it: the weights end (nearly) where an uninterrupted run's do.

    CUDA's atomic adds (the embedding's backward) are not bit-reproducible, so a tolerance; on a
    CPU the two are identical.
    """
    steps, save_every, crash_at = ctx.sizes.resume
    flags = dict(max_steps=steps, save_every=save_every, eval_every=save_every, dtype="fp32")
    pretrain.run(pretrain_config(ctx, "resume-straight", **flags))
    real_step = pretrain.Trainer.step

    def step_then_crash(trainer, *args, **kwargs):
        if trainer.step_count == crash_at:
            raise Crash
        return real_step(trainer, *args, **kwargs)

    with mock.patch.object(pretrain.Trainer, "step", step_then_crash), contextlib.suppress(Crash):
        pretrain.run(pretrain_config(ctx, "resume-crashed", **flags))
    pretrain.run(pretrain_config(ctx, "resume-crashed", resume=True, overwrite=False, **flags))
    a = load_torch(ctx.out / "resume-straight" / "trainer_state.pt")
    b = load_torch(ctx.out / "resume-crashed" / "trainer_state.pt")
    diff = max((a["model"][k].float() - b["model"][k].float()).abs().max().item() for k in a["model"])
    rng = b["rng"][0]
    one_gpu_state = "cuda" not in rng or rng["cuda"].dim() == 1  # the training device's state, not a list
    details = {"steps": steps, "crashed_at": crash_at, "max_weight_diff": diff, "world_size": b["world_size"],
               "one_cuda_rng_state": one_gpu_state}
    return diff <= 1e-3 and one_gpu_state and b["trainer"]["step"] == steps, details


def check_throughput(ctx: Context) -> tuple[bool, dict]:
    """gpt2-small training steps (forward + backward + fused AdamW) in the precision --dtype auto picks."""
    s = ctx.sizes
    cfg = preset_config(s.throughput_preset)
    dtype = resolve_dtype("auto", ctx.device)
    amp = None if dtype == torch.float32 else dtype
    result = measure_lm_training(cfg, s.throughput_batch, cfg.context_length, ctx.device, StepOptions(autocast=amp),
                                 warmup=1 if ctx.dry_run else 3, iters=1 if ctx.dry_run else 10)
    peak = sustained_matmul_flops(s.peak_size, dtype, ctx.device, 0.01 if ctx.dry_run else 0.5, 1 if ctx.dry_run else 3)
    details = {"preset": s.throughput_preset, "vocab": PRESET_VOCAB[s.throughput_preset], "dtype": str(dtype),
               "batch": f"{s.throughput_batch}x{cfg.context_length}", "ms_per_step": result.ms_per_step,
               "tokens_per_s": result.items_per_s, "tflops": result.achieved_flops / 1e12,
               "mfu_measured_peak": f"{result.achieved_flops / peak:.1%}",
               "mfu_datasheet": datasheet_mfu(result.achieved_flops, ctx.device, dtype),
               "measured_peak_tflops": peak / 1e12, "memory_mib": result.memory_mib}
    return math.isfinite(result.ms_per_step), details


CHECKS: dict[str, Callable[[Context], tuple[bool, dict]]] = {
    "tests": check_tests, "trainer-bf16": check_trainer("bf16"), "trainer-fp16": check_trainer("fp16"),
    "compile": check_compile, "generation": check_generation, "finetune": check_finetune, "resume": check_resume,
    "throughput": check_throughput,
}


def run_check(name: str, ctx: Context) -> Result:
    """One check, its output in OUT/logs/<name>.log; an exception fails it (the traceback is in the log)."""
    log = ctx.out / "logs" / f"{name}.log"
    began = time.perf_counter()
    with log.open("w") as f, contextlib.redirect_stdout(f), contextlib.redirect_stderr(f):
        try:
            passed, details = CHECKS[name](ctx)
        except Exception as err:  # a failed check is a finding to report, not a reason to stop
            traceback.print_exc()
            passed, details = False, {"error": f"{type(err).__name__}: {err}"[:500], "log": str(log)}
    result = Result(name, passed, time.perf_counter() - began, details)
    print(f"{'pass' if passed else 'FAIL'}  {name:<13} {result.seconds:6.1f} s  {short(details)}", flush=True)
    return result


def short(details: dict) -> str:
    def cell(value):
        return f"{value:.4g}" if isinstance(value, float) else str(value)
    return ", ".join(f"{k} {cell(v)}" for k, v in details.items())


def write_report(ctx: Context, results: list[Result], seconds: float, record: bool) -> str:
    title = "GPU device check" + (" (dry run on the CPU)" if ctx.dry_run else "")
    stamp = time.strftime("%Y-%m-%d %H:%M %Z")
    rows = [[r.name, "pass" if r.passed else "FAIL", r.seconds, short(r.details).replace("|", "/")] for r in results]
    passed = sum(r.passed for r in results)
    text = "\n".join([f"## {title} — {stamp}", "", *machine_lines(ctx.device), f"- command: `{command_line()}`",
                      f"- {passed} of {len(results)} checks passed in {seconds / 60:.1f} min", "",
                      format_table(["check", "result", "seconds", "details"], rows), ""]) + "\n"
    (ctx.out / "report.md").write_text(text)
    (ctx.out / "report.json").write_text(json.dumps({"title": title, "date": stamp, "seconds": seconds,
                                                     "checks": [asdict(r) for r in results]}, indent=2, default=str))
    if record:
        with DEFAULT_RESULTS.open("a") as f:
            f.write(text + "\n")
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("out/gpu_check"), help="where the runs, logs and report go")
    parser.add_argument("--dry-run", action="store_true", help="tiny sizes on the CPU: proves the plumbing (CI)")
    parser.add_argument("--only", default=",".join(CHECKS), help=f"comma-separated subset of: {', '.join(CHECKS)}")
    parser.add_argument("--record", action="store_true", help="also append the report to benchmarks/RESULTS.md")
    args = parser.parse_args(argv)
    chosen = args.only.split(",")
    if unknown := [name for name in chosen if name not in CHECKS]:
        parser.error(f"unknown check(s) {unknown}; choose from {', '.join(CHECKS)}")
    if not args.dry_run and not torch.cuda.is_available():
        print("error: no CUDA GPU here (torch.cuda.is_available() is False): the device check needs one; "
              "--dry-run runs its plumbing on the CPU", file=sys.stderr)
        return 2
    device = torch.device("cpu" if args.dry_run else "cuda")
    sizes = DRY if args.dry_run else FULL
    ctx = Context(args.out, device, args.dry_run, sizes)
    (args.out / "logs").mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):
        n = sizes.labeled
        ctx.data = generate(args.out / "data", n_unlabeled=sizes.documents, n_train=n, n_valid=n // 4, n_test=n // 4,
                            n_transfer=n // 4)
    results = [run_check(name, ctx) for name in chosen]
    print("\n" + write_report(ctx, results, time.perf_counter() - began, args.record))
    return 0 if all(r.passed for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
