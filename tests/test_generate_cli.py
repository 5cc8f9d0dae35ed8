"""python -m minilm.generate: streams what MiniLM.generate would return, and refuses bad input in one line."""

import io
import json

import pytest
import torch
from tiny_checkpoint import CORPUS, make_checkpoint

from minilm.checkpoint import load_lm
from minilm.common.files import save_torch
from minilm.text.tokenizer import Tokenizer
from minilm.tools.generate import cli, encode_prompt, main, parse_args, stream_sample


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("pretrain"))


def run_main(argv: list[str], capsys) -> tuple[list[str], str, str]:
    """What `python -m minilm.generate ARGV` does: the texts, stdout, stderr."""
    texts = main(parse_args(argv))
    captured = capsys.readouterr()
    return texts, captured.out, captured.err


def test_streamed_sample_is_what_generate_returns(ckpt):
    model, tokenizer = load_lm(ckpt, torch.device("cpu"))
    prompt_ids = encode_prompt(tokenizer, "The waiter praised", model.cfg.context_length)
    out = io.StringIO()
    new_ids = stream_sample(model, tokenizer, prompt_ids, out, max_new_tokens=40, temperature=1.0, top_k=100,
                            top_p=None, generator=torch.Generator().manual_seed(3))
    reference = model.generate(torch.tensor([prompt_ids]), 40, temperature=1.0, top_k=100,
                               generator=torch.Generator().manual_seed(3))[0, len(prompt_ids):].tolist()
    if tokenizer.eos_id in reference:  # the stream stops at the end-of-text token
        reference = reference[: reference.index(tokenizer.eos_id)]
    assert new_ids == reference
    # 40 tokens over a window of 16: the cache was rebuilt on the way, the text is still whole.
    assert out.getvalue() == tokenizer.decode(prompt_ids + new_ids)


def test_same_seed_same_samples_each_under_its_header(ckpt, capsys):
    argv = ["--ckpt", str(ckpt), "--prompt", "The waiter", "--num-samples", "2", "--seed", "7",
            "--max-new-tokens", "12", "--device", "cpu"]
    texts, out, err = run_main(argv, capsys)
    assert run_main(argv, capsys)[1] == out
    assert len(texts) == 2 and all(t.startswith("The waiter") for t in texts)
    assert out.count("--- prompt 1, sample ") == 2 and err == ""


def test_cli_returns_none_so_the_console_script_exits_with_0(ckpt, capsys):
    # minilm-generate runs sys.exit(cli()): anything but None or 0 would be a failure exit.
    assert cli(["--ckpt", str(ckpt), "--max-new-tokens", "3", "--device", "cpu"]) is None
    assert capsys.readouterr().out.endswith("\n")


def test_no_prompt_starts_from_the_beginning_of_text(ckpt, capsys):
    texts, out, _ = run_main(["--ckpt", str(ckpt), "--seed", "1", "--max-new-tokens", "5", "--device", "cpu"],
                            capsys)
    assert len(texts) == 1 and out == texts[0] + "\n"  # one sample: no header


def test_prompt_file_gives_samples_for_each_line(ckpt, tmp_path, capsys):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("The waiter\n\nThe chef\n")
    texts, _, _ = run_main(["--ckpt", str(ckpt), "--prompt-file", str(prompts), "--seed", "1",
                           "--max-new-tokens", "4", "--device", "cpu"], capsys)
    assert len(texts) == 2 and texts[0].startswith("The waiter") and texts[1].startswith("The chef")


def test_long_prompt_is_cropped_with_a_note(ckpt, capsys):
    long_prompt = " ".join(CORPUS.read_text().splitlines()[:5])
    texts, _, err = run_main(["--ckpt", str(ckpt), "--prompt", long_prompt, "--seed", "1",
                             "--max-new-tokens", "3", "--device", "cpu"], capsys)
    assert err.count("\n") == 1 and err.startswith("note: the prompt is") and "keeping its last 15 tokens" in err
    tokenizer = Tokenizer.load(ckpt / "tokenizer.model")
    kept = tokenizer.decode(tokenizer.encode(long_prompt)[-15:])  # context 16, minus one for the first new token
    assert long_prompt.endswith(kept) and texts[0].startswith(kept)


def test_finetuned_dir_generates_with_its_kept_lm_head(ckpt, tmp_path_factory, capsys):
    finetuned = make_checkpoint(tmp_path_factory.mktemp("finetune"), kind="finetune")
    argv = ["--prompt", "The waiter", "--seed", "5", "--max-new-tokens", "10", "--device", "cpu"]
    # Same body and LM head as the pretrain dir (same seed), so the very same text.
    assert run_main(["--ckpt", str(finetuned), *argv], capsys)[0] == run_main(["--ckpt", str(ckpt), *argv], capsys)[0]


def drop_lm_head(ckpt_dir):
    state = torch.load(ckpt_dir / "model.pt", weights_only=True)
    save_torch({k: v for k, v in state.items() if k != "lm_head.weight"}, ckpt_dir / "model.pt")


@pytest.mark.parametrize("damage, flags, message", [
    (None, ["--temperature", "-1"], "temperature must be >= 0"),
    (None, ["--top-p", "0"], "top_p must be in (0, 1]"),
    (None, ["--top-p", "1.5"], "top_p must be in (0, 1]"),
    (None, ["--top-k", "0"], "top_k must be at least 1"),
    (None, ["--prompt-file", "{tmp}/empty.txt"], "has no prompts"),
    (None, ["--prompt-file", "{tmp}/missing.txt"], "not found"),
    (lambda d: (d / "config.json").unlink(), [], "is not a minilm checkpoint dir"),
    (lambda d: (d / "model.pt").write_bytes(b"not a checkpoint"), [], "is not a plain tensor checkpoint"),
    (drop_lm_head, [], "has no language-model head"),
])
def test_bad_input_is_one_line_and_exit_code_2(damage, flags, message, tmp_path, capsys):
    ckpt_dir = make_checkpoint(tmp_path / "ckpt")
    (tmp_path / "empty.txt").write_text("\n  \n")
    if damage is not None:
        damage(ckpt_dir)
    flags = [f.format(tmp=tmp_path) for f in flags]
    with pytest.raises(SystemExit) as exit_info:
        cli(["--ckpt", str(ckpt_dir), "--max-new-tokens", "2", "--device", "cpu", *flags])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err


def test_tokenizer_fingerprint_mismatch_names_both(tmp_path, capsys):
    ckpt_dir = make_checkpoint(tmp_path / "ckpt")
    config = json.loads((ckpt_dir / "config.json").read_text())
    config["tokenizer"]["fingerprint"] = "0123456789abcdef"
    (ckpt_dir / "config.json").write_text(json.dumps(config))
    with pytest.raises(SystemExit) as exit_info:
        cli(["--ckpt", str(ckpt_dir), "--device", "cpu"])
    err = capsys.readouterr().err
    real = Tokenizer.load(ckpt_dir / "tokenizer.model").fingerprint
    assert exit_info.value.code == 2 and err.count("\n") == 1 and "0123456789abcdef" in err and real in err


def test_missing_checkpoint_dir(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli(["--ckpt", str(tmp_path / "nowhere")])
    assert exit_info.value.code == 2 and "does not exist" in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_a_gpu(ckpt, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli(["--ckpt", str(ckpt), "--device", "cuda"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and "no CUDA GPU" in err
