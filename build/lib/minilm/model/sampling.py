"""Sampling text from a language model, one token at a time.

Each step turns the logits of the last position into a distribution and draws from it:

    p = softmax(logits / temperature)       temperature < 1 sharpens, > 1 flattens, 0 = argmax
    top-k: keep the k most likely tokens, renormalise
    top-p (nucleus): keep the smallest set of tokens whose probability adds up to >= p

The model only ever sees its last `context_length` tokens (a sliding window). With the KV
cache, each step feeds one new token and reuses the keys/values of the earlier ones. When the
sequence outgrows the window, every token's position changes (the window's first token is
always position 0), so the cache is rebuilt from the cropped window: the output is then exactly
what a model with no cache computes, for every position encoding.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from minilm.model.attention import KVCache
from minilm.model.config import ConfigError


def check_sampling(temperature: float, top_k: int | None, top_p: float | None) -> None:
    """The one place sampling settings are checked (generate, the CLI and the jobs call it)."""
    if not temperature >= 0:  # also refuses NaN, for which every comparison is False
        raise ConfigError(f"temperature must be >= 0 (0 = greedy), got {temperature}")
    if top_k is not None and top_k < 1:
        raise ConfigError(f"top_k must be at least 1 (or None for no limit), got {top_k}")
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise ConfigError(f"top_p must be in (0, 1] (or None for no limit), got {top_p}")


def sample_next_token(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
                      top_p: float | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """logits (B, V) of the next token -> chosen token ids (B, 1)."""
    check_sampling(temperature, top_k, top_p)
    if temperature == 0:
        return logits.argmax(dim=-1, keepdim=True)  # greedy: no randomness at all
    logits = logits.float() / temperature  # (B, V)
    if top_k is not None:
        kth_best = torch.topk(logits, min(top_k, logits.size(-1))).values[:, -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth_best, float("-inf"))
    if top_p is not None:
        sorted_logits, order = torch.sort(logits, descending=True)  # (B, V) each
        sorted_probs = torch.softmax(sorted_logits, dim=-1)
        # Probability mass of the tokens strictly before each one; a token stays while the mass
        # before it is < p, so the most likely token always stays.
        mass_before = sorted_probs.cumsum(dim=-1) - sorted_probs  # (B, V)
        sorted_logits = sorted_logits.masked_fill(mass_before >= top_p, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
    probs = torch.softmax(logits, dim=-1)  # (B, V)
    return torch.multinomial(probs, num_samples=1, generator=generator)  # (B, 1)


@torch.no_grad()
def stream_tokens(model, input_ids: torch.Tensor, max_new_tokens: int, temperature: float = 1.0,
                  top_k: int | None = None, top_p: float | None = None, use_cache: bool = True,
                  generator: torch.Generator | None = None) -> Iterator[torch.Tensor]:
    """Yield each new token (B, 1) as soon as it is chosen: the basis of generate() and of streaming.

    model: a MiniLM (anything with .cfg.context_length and forward(ids, cache=...) -> (logits, _)).
    """
    if input_ids.dim() != 2 or input_ids.size(1) == 0:
        raise ValueError(f"input_ids must be (B, T) with T >= 1, got shape {tuple(input_ids.shape)}")
    window = model.cfg.context_length
    was_training = model.training
    model.eval()
    ids = input_ids
    cache, fresh = None, None  # fresh: the tokens to feed this step (all of the window, or one)
    try:
        for _ in range(max_new_tokens):
            if not use_cache:
                logits, _ = model(ids[:, -window:])  # the reference: re-read the whole window
            else:
                if cache is None or cache.length + fresh.size(1) > window:
                    # First step, or the window slid: start over from the last `window` tokens.
                    cache = new_cache(model, ids.size(0), ids.device)
                    fresh = ids[:, -window:]
                logits, _ = model(fresh, cache=cache)
            next_token = sample_next_token(logits[:, -1], temperature, top_k, top_p, generator)  # (B, 1)
            ids = torch.cat([ids, next_token], dim=1)
            fresh = next_token
            yield next_token
    finally:
        model.train(was_training)


def new_cache(model, batch_size: int, device: torch.device) -> KVCache:
    cfg = model.cfg
    dtype = next(model.parameters()).dtype
    return KVCache(cfg.n_layer, batch_size, cfg.n_head, cfg.context_length, cfg.head_size, device, dtype)
