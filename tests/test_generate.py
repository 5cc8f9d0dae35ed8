"""Generation: the KV cache changes speed, never tokens; sampling knobs do what they say."""

import pytest
import torch
from conftest import ATTN_IMPLS, POS_ENCODINGS, tiny_config

from minilm import MiniLM
from minilm.model.sampling import sample_next_token, stream_tokens


@pytest.mark.parametrize("pos", POS_ENCODINGS)
@pytest.mark.parametrize("impl", ATTN_IMPLS)
def test_cached_greedy_equals_uncached_even_past_the_context(pos, impl):
    lm = MiniLM(tiny_config(pos_encoding=pos, attn_impl=impl, context_length=8))
    prompt = torch.randint(0, 97, (2, 5))
    # 5 + 20 tokens: the window of 8 slides 17 times; the cache must be rebuilt each time.
    cached = lm.generate(prompt, max_new_tokens=20, temperature=0, use_cache=True)
    uncached = lm.generate(prompt, max_new_tokens=20, temperature=0, use_cache=False)
    assert cached.shape == (2, 25)
    assert torch.equal(cached, uncached)
    assert torch.equal(cached[:, :5], prompt)


def test_prompt_longer_than_context_is_cropped_not_refused():
    lm = MiniLM(tiny_config(context_length=8))
    prompt = torch.randint(0, 97, (1, 30))
    out = lm.generate(prompt, max_new_tokens=3, temperature=0)
    assert out.shape == (1, 33)
    # The answer depends only on the last 8 tokens, exactly as the uncached reference says.
    assert torch.equal(out[:, 30:], lm.generate(prompt[:, -8:], max_new_tokens=3, temperature=0)[:, 8:])


def test_cached_sampling_equals_uncached_for_a_fixed_seed():
    lm = MiniLM(tiny_config(context_length=8))
    prompt = torch.randint(0, 97, (3, 4))
    a = lm.generate(prompt, 15, temperature=1.0, top_k=20, generator=torch.Generator().manual_seed(1))
    b = lm.generate(prompt, 15, temperature=1.0, top_k=20, use_cache=False,
                    generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b)


def test_streaming_yields_the_same_tokens_as_generate():
    lm = MiniLM(tiny_config())
    prompt = torch.randint(0, 97, (1, 3))
    streamed = list(stream_tokens(lm, prompt, 6, temperature=0))
    assert len(streamed) == 6 and streamed[0].shape == (1, 1)
    assert torch.equal(torch.cat([prompt, *streamed], dim=1), lm.generate(prompt, 6, temperature=0))


def test_generate_restores_training_mode():
    lm = MiniLM(tiny_config()).train()
    lm.generate(torch.zeros(1, 1, dtype=torch.long), 2)
    assert lm.training


def test_temperature_zero_and_top_k_one_are_greedy():
    logits = torch.randn(4, 50)
    greedy = logits.argmax(-1, keepdim=True)
    assert torch.equal(sample_next_token(logits, temperature=0), greedy)
    assert torch.equal(sample_next_token(logits, temperature=1.0, top_k=1), greedy)
    assert torch.equal(sample_next_token(logits, temperature=1.0, top_p=1e-6), greedy)


def test_top_k_and_top_p_only_draw_from_the_kept_tokens():
    logits = torch.tensor([[4.0, 3.0, 2.0, -5.0, -6.0]])  # probs ≈ .66 .24 .09 .0004 .0002
    gen = torch.Generator().manual_seed(0)
    top_k = {sample_next_token(logits, 1.0, top_k=2, generator=gen).item() for _ in range(300)}
    top_p = {sample_next_token(logits, 1.0, top_p=0.8, generator=gen).item() for _ in range(300)}
    assert top_k == {0, 1}
    assert top_p == {0, 1}  # .66 < .8, so the second token is needed; .66 + .24 >= .8 stops there


def test_negative_temperature_is_refused():
    with pytest.raises(ValueError, match="temperature"):
        sample_next_token(torch.zeros(1, 3), temperature=-1)


def test_top_p_one_keeps_every_token(monkeypatch):
    # Regression: the float cumsum of a 50k vocabulary reaches 1.0 before its tail, so p = 1 gave
    # thousands of tokens probability 0. Look at the distribution the sampler draws from.
    seen = {}
    real_multinomial = torch.multinomial

    def spy(probs, *args, **kwargs):
        seen["probs"] = probs
        return real_multinomial(probs, *args, **kwargs)

    monkeypatch.setattr(torch, "multinomial", spy)
    logits = torch.randn(1, 50_000) * 3
    sample_next_token(logits, top_p=1.0)
    assert (seen["probs"] > 0).all()
    sample_next_token(logits, top_p=0.5)
    assert (seen["probs"] == 0).any()  # a real nucleus still cuts the tail
