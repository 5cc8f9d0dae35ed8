"""Device, precision and RNG choices that only matter on a GPU, checked on a CPU with mocked CUDA."""

import pytest
import torch

from minilm.common import runtime
from minilm.common.runtime import resolve_dtype, rng_state, set_rng_state


@pytest.mark.parametrize("capability,expected", [
    ((7, 5), torch.float16),  # T4, RTX 20xx: bf16 would be emulated
    ((7, 0), torch.float16),  # V100
    ((6, 0), torch.float16),  # P100
    ((8, 0), torch.bfloat16),  # A100
    ((8, 6), torch.bfloat16),  # RTX 30xx, A10
    ((9, 0), torch.bfloat16),  # H100
])
def test_dtype_auto_picks_bf16_only_with_native_support(monkeypatch, capability, expected):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    # torch >= 2.4 says yes to bf16 on every GPU (emulation counts): auto must not ask it
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert resolve_dtype("auto", torch.device("cuda", 0)) == expected


def test_dtype_auto_is_fp32_on_a_cpu():
    assert resolve_dtype("auto", torch.device("cpu")) == torch.float32


class FakeCudaRng:
    """torch.cuda's RNG functions for a machine with `visible` GPUs, each with its own state."""

    def __init__(self, visible: int):
        self.states = {i: torch.full((16,), i, dtype=torch.uint8) for i in range(visible)}

    def index(self, device) -> int:
        index = torch.device(device).index or 0
        if index not in self.states:
            raise IndexError(f"no GPU {index}: {len(self.states)} visible")
        return index

    def get_rng_state(self, device="cuda"):
        return self.states[self.index(device)].clone()

    def set_rng_state(self, state, device="cuda"):
        self.states[self.index(device)] = state.clone()

    def install(self, monkeypatch):
        monkeypatch.setattr(torch.cuda, "get_rng_state", self.get_rng_state)
        monkeypatch.setattr(torch.cuda, "set_rng_state", self.set_rng_state)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: len(self.states))

        def one_per_visible_gpu(*args):
            raise AssertionError("one state per visible GPU: a resume with fewer GPUs would fail")

        monkeypatch.setattr(torch.cuda, "get_rng_state_all", one_per_visible_gpu)
        monkeypatch.setattr(torch.cuda, "set_rng_state_all", one_per_visible_gpu)


def test_resume_restores_the_training_gpus_rng_with_fewer_gpus_visible(monkeypatch):
    """Saved by the process on cuda:3 of an 8-GPU box, resumed with CUDA_VISIBLE_DEVICES=0."""
    big_box = FakeCudaRng(visible=8)
    big_box.install(monkeypatch)
    saved = rng_state(torch.device("cuda", 3))
    assert torch.equal(saved["cuda"], big_box.states[3])  # that device's state, not eight

    small_box = FakeCudaRng(visible=1)
    small_box.install(monkeypatch)
    set_rng_state(saved, torch.device("cuda", 0))
    assert torch.equal(small_box.states[0], big_box.states[3])


def test_a_cpu_resume_of_a_gpu_run_ignores_the_cuda_state(monkeypatch):
    FakeCudaRng(visible=2).install(monkeypatch)
    saved = rng_state(torch.device("cuda", 1))
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda *a: pytest.fail("no GPU to restore onto"))
    set_rng_state(saved, torch.device("cpu"))
    assert torch.equal(torch.get_rng_state(), saved["torch"])


def test_cpu_rng_state_has_no_cuda_part():
    assert "cuda" not in runtime.rng_state(torch.device("cpu"))
