"""torchrun: joining the group, sharing batches and losses, rank 0 first, data-parallel fine-tuning.

The multi-process tests start two CPU processes with gloo (torch.multiprocessing.spawn), the
same code path NCCL takes on GPUs.
"""

import csv
import json
import os
import socket
import time
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from jobs import TINY_MODEL, tiny_finetune_config, tiny_pretrain_config, write_labeled_splits

from minilm.common import distributed
from minilm.common.distributed import PREPARATION_TIMEOUT, Distributed, init_distributed, split_batch
from minilm.common.errors import UserError
from minilm.common.files import load_torch, save_torch
from minilm.train import finetune, pretrain
from minilm.train.trainer import OptimSettings, Trainer


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _join(rank: int, world_size: int, port: int) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)


def test_init_on_cuda_binds_the_gpu_and_waits_long_on_a_gloo_group(monkeypatch):
    calls = {}
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: calls.setdefault("set_device", device))
    monkeypatch.setattr(distributed.dist, "init_process_group", lambda **kw: calls.setdefault("init", kw))
    monkeypatch.setattr(distributed.dist, "new_group", lambda **kw: calls.setdefault("group", kw) and "gloo group")
    ctx, device = init_distributed("auto")
    assert device == torch.device("cuda", 1) == calls["set_device"]
    assert calls["init"] == {"backend": "nccl", "device_id": torch.device("cuda", 1)}
    assert calls["group"] == {"backend": "gloo", "timeout": PREPARATION_TIMEOUT}
    assert PREPARATION_TIMEOUT.total_seconds() >= 6 * 3600  # NCCL's 10 minutes would kill a big tokenization
    assert (ctx.rank, ctx.local_rank, ctx.world_size, ctx.cpu_group) == (3, 1, 4, "gloo group")


def test_more_processes_than_gpus_is_one_clear_line(monkeypatch):
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("LOCAL_RANK", "2")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(UserError, match="only 2 GPU"):
        init_distributed("cuda")


@pytest.mark.parametrize("batch,world", [(5, 2), (8, 3), (1, 2), (2, 3)])
def test_split_batch_shares_add_up_to_the_global_mean(batch, world):
    losses = torch.arange(batch, dtype=torch.float) ** 2  # one loss per row
    labels = torch.arange(batch)
    weighted = []
    for rank in range(world):
        (rows, row_labels), share = split_batch((losses, labels), Distributed(rank, rank, world))
        assert len(rows) >= 1  # every rank runs the model
        assert torch.equal(row_labels.float(), rows.sqrt().round())  # tensors are split alike
        weighted.append(share * rows.mean())
    # DDP averages over ranks: that must be the one-process mean over the whole batch
    torch.testing.assert_close(sum(weighted) / world, losses.mean())


def test_seed_dropout_gives_each_rank_its_own_masks():
    draws = []
    for rank in (0, 1):
        Distributed(rank, rank, 2).seed_dropout(7)
        draws.append(torch.rand(4))
    assert not torch.equal(*draws)
    torch.manual_seed(3)
    Distributed().seed_dropout(7)  # one process: the stream is left alone
    after = torch.rand(1)
    torch.manual_seed(3)
    assert torch.equal(after, torch.rand(1))


def test_predict_and_find_lr_refuse_torchrun(monkeypatch, tmp_path):
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(UserError, match="--predict runs in one process"):
        finetune.predict(finetune.FinetuneConfig(out=str(tmp_path), predict=["hi"]))
    with pytest.raises(UserError, match="--find-lr runs in one process"):
        pretrain.find_lr(tiny_pretrain_config(tmp_path, find_lr=True))


def _poisoned_rank_worker(rank: int, port: int, folder: str) -> None:
    """Rank 1's loss is NaN at step 3; both ranks must stop there, having logged the same losses.
    Also: main_first lets rank 0 finish its block before rank 1 starts its own."""
    _join(rank, 2, port)
    ctx, device = init_distributed("cpu")
    marker = Path(folder) / "prepared"
    with ctx.main_first():
        if ctx.is_main:
            time.sleep(0.3)
            marker.write_text("rank 0 was here")
        saw_marker = marker.exists()
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    trainer = Trainer(model, OptimSettings(1e-2, 0.0, 0, 10, 0.0, 0.0, 1.0), device, torch.float32,
                      distributed=True)
    data = torch.randn(6, 4, generator=torch.Generator().manual_seed(rank))

    def loss_fn(m, batch):
        loss = m(batch).pow(2).mean()
        return loss * float("nan") if rank == 1 and trainer.step_count == 2 else loss

    losses, error = [], None
    try:
        for _ in range(5):
            losses.append(trainer.step([data], loss_fn))
    except FloatingPointError as err:
        error = str(err)
    (Path(folder) / f"rank{rank}.json").write_text(json.dumps({"losses": losses, "error": error,
                                                               "saw_marker": saw_marker}))
    ctx.close()


@pytest.mark.slow
def test_a_nan_on_one_rank_stops_every_rank_at_the_same_step(tmp_path):
    mp.spawn(_poisoned_rank_worker, args=(_free_port(), str(tmp_path)), nprocs=2, join=True)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["error"] == ranks[1]["error"] == "loss became nan at step 3"
    assert ranks[0]["losses"] == ranks[1]["losses"] and len(ranks[0]["losses"]) == 2  # the mean over ranks
    assert ranks[0]["saw_marker"] and ranks[1]["saw_marker"]


def test_resume_with_another_number_of_processes_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    pretrain.run(tiny_pretrain_config(out, max_steps=4))
    state = load_torch(out / "trainer_state.pt")
    assert state["world_size"] == 1 and len(state["rng"]) == 1  # one RNG state per rank
    state["world_size"] = 2
    save_torch(state, out / "trainer_state.pt")
    with pytest.raises(UserError) as err:
        pretrain.run(tiny_pretrain_config(out, max_steps=8, resume=True))
    assert "saved by 2 process(es) but 1 are running" in str(err.value) and "\n" not in str(err.value)


def _finetune_worker(rank: int, port: int, pretrained: str, splits: dict, out: str) -> None:
    _join(rank, 2, port)
    finetune.run(tiny_finetune_config(Path(pretrained), Path(out), splits, **FINETUNE_FLAGS))


# an untied LM head without the LM loss gets no gradient, and so do the frozen blocks: DDP must cope
FINETUNE_FLAGS = dict(epochs=1, batch_size=25, freeze="embeddings", device="cpu")  # gloo, even next to a GPU


@pytest.mark.slow
def test_data_parallel_fine_tuning_on_two_processes_matches_one(tmp_path):
    pretrained = tmp_path / "pretrained"
    pretrain.run(tiny_pretrain_config(pretrained, max_steps=4, model=dict(TINY_MODEL, tie_weights=False), device="cpu"))
    splits = {name: str(path) for name, path in write_labeled_splits(tmp_path).items()}
    finetune.run(tiny_finetune_config(pretrained, tmp_path / "one", splits, **FINETUNE_FLAGS))
    mp.spawn(_finetune_worker, args=(_free_port(), str(pretrained), splits, str(tmp_path / "two")), nprocs=2,
             join=True)
    one, two = load_torch(tmp_path / "one" / "model.pt"), load_torch(tmp_path / "two" / "model.pt")
    for name, tensor in one.items():
        torch.testing.assert_close(two[name], tensor, rtol=1e-4, atol=1e-5, msg=name)
    # 128 examples in batches of 25: 13 + 12 rows per rank, the last batch of 3 as 2 + 1;
    # the logged loss is the global batch's
    rows = [list(csv.DictReader((tmp_path / run / "metrics.csv").open())) for run in ("one", "two")]
    assert rows[0][0]["step"] == rows[1][0]["step"] == "6"
    assert float(rows[1][0]["train_loss"]) == pytest.approx(float(rows[0][0]["train_loss"]), rel=1e-4)
    assert (tmp_path / "two" / "report.json").is_file()


def readme_command(prefix: str) -> list[str]:
    """The flags of the README command line (continuation lines joined) that starts with prefix."""
    text = (Path(__file__).parent.parent / "README.md").read_text().replace("\\\n", " ")
    line = next(line for line in text.splitlines() if line.startswith(prefix))
    return line.split("train_pretrain.py", 1)[1].split()


def test_gpt2_small_brings_gpu_job_defaults_unless_a_flag_is_given():
    cfg = pretrain.parse_args(["--preset", "gpt2-small", "--lr", "1e-3"])
    assert (cfg.lr, cfg.min_lr, cfg.warmup_steps, cfg.vocab_size, cfg.max_time, cfg.weight_decay) == \
        (1e-3, 6e-5, 1000, 32000, 0.0, 0.1)
    cpu = pretrain.parse_args(["--preset", "small"])
    assert (cpu.lr, cpu.warmup_steps, cpu.vocab_size, cpu.weight_decay) == (6e-3, 90, 4096, 0.0)  # 10% of 900 steps


def test_the_readme_torchrun_command_runs_the_single_gpu_schedule():
    nproc = 4
    single = pretrain.parse_args(readme_command("python train_pretrain.py --data corpus.txt --preset gpt2-small"))
    multi = pretrain.parse_args(readme_command(f"torchrun --nproc_per_node={nproc} train_pretrain.py"))
    schedule = ("lr", "min_lr", "warmup_steps", "max_steps", "max_time", "vocab_size", "preset", "compile")
    assert {k: getattr(multi, k) for k in schedule} == {k: getattr(single, k) for k in schedule}
    assert multi.max_time == 0 and multi.lr <= 6e-4  # no CPU time box, no CPU learning rate
    assert multi.batch_size * multi.grad_accum * nproc == single.batch_size * single.grad_accum
