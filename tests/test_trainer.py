"""The Trainer's clock and schedule: fp16 steps the GradScaler skips, and torch.compile's first step."""

import time

import torch

from minilm.train import trainer as trainer_module
from minilm.train.trainer import OptimSettings, Trainer, lr_at

SETTINGS = OptimSettings(lr=1e-2, min_lr=1e-3, warmup_steps=4, max_steps=20, max_time=0.0, weight_decay=0.0,
                         grad_clip=1.0)


def test_an_fp16_step_the_scaler_skips_does_not_advance_the_schedule():
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    trainer = Trainer(model, SETTINGS, torch.device("cpu"), torch.float16)  # a GradScaler, on the CPU
    x = torch.randn(8, 4)
    before = [p.detach().clone() for p in model.parameters()]
    # finite in fp32, but × the scaler's 65536 the gradient overflows: the scaler skips the update
    trainer.step([x], lambda m, b: m(b).float().mean() * 1e35)
    assert trainer.last_step_skipped and trainer.step_count == 0
    assert all(torch.equal(a, p) for a, p in zip(before, model.parameters(), strict=True))
    trainer.step([x], lambda m, b: m(b).float().pow(2).mean())
    assert not trainer.last_step_skipped and trainer.step_count == 1
    assert trainer.lr == lr_at(0, 0.0, SETTINGS)  # the first real update got the first step's rate


def test_compiling_is_left_off_the_clock(monkeypatch):
    monkeypatch.setattr(trainer_module.torch, "compile", lambda model: model)  # compiling for real takes minutes
    calls = {"n": 0}

    def slow_first_call(m, batch):
        calls["n"] += 1
        if calls["n"] == 1:
            time.sleep(0.3)  # what compiling costs the first step
        return m(batch).pow(2).mean()

    elapsed = {}
    for compiled in (False, True):
        calls["n"] = 0
        trainer = Trainer(torch.nn.Linear(4, 1), SETTINGS, torch.device("cpu"), torch.float32, compile=compiled)
        for _ in range(3):
            trainer.step([torch.randn(2, 4)], slow_first_call)
        elapsed[compiled] = trainer.elapsed
    assert elapsed[False] >= 0.3 > elapsed[True]
