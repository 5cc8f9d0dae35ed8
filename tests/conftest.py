"""Shared test helpers: tiny configs and a fixed seed, so every test runs in well under a second."""

import pytest
import torch

from minilm import ModelConfig
from minilm.model.config import ATTN_IMPLS, POS_ENCODINGS  # noqa: F401 (the tests import them from here)

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def tiny_config(**overrides) -> ModelConfig:
    values = dict(vocab_size=97, context_length=16, n_layer=2, n_head=4, d_model=32, dropout=0.0)
    values.update(overrides)
    return ModelConfig(**values)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
