"""python -m minilm.attention_map: the weights it draws are the weights the model uses."""

import pytest
import torch
from conftest import tiny_config
from tiny_checkpoint import make_checkpoint

from minilm import MiniLM
from minilm.tools import attention_map
from minilm.tools.attention_map import attention_maps, cli


@pytest.mark.parametrize("pos_encoding", ["learned", "rope"])
def test_maps_are_causal_probability_rows(pos_encoding):
    model = MiniLM(tiny_config(pos_encoding=pos_encoding))
    maps = attention_maps(model, torch.randint(0, 97, (1, 9)))
    assert maps.shape == (2, 4, 9, 9)  # (n_layer, nh, T, T)
    torch.testing.assert_close(maps.sum(dim=-1), torch.ones(2, 4, 9))
    assert torch.all(maps.triu(diagonal=1) == 0)  # no query reads a later key
    assert torch.all(maps[:, :, 0, 0] == 1)  # the first token can only read itself


@pytest.mark.parametrize("attn_impl", ["explicit", "fused"])
def test_weights_times_values_is_what_each_attention_layer_outputs(attn_impl):
    """A @ V, heads concatenated, through out_proj == the layer's own output, layer by layer."""
    model = MiniLM(tiny_config(attn_impl=attn_impl)).eval()
    ids = torch.randint(0, 97, (1, 11))
    maps = attention_maps(model, ids)
    x, rotary = model.body.embed(ids)
    with torch.no_grad():
        for layer, block in enumerate(model.body.blocks):
            h = block.norm1(x)
            _, _, v = block.attn.heads(h, rotary)  # (1, nh, T, hs)
            y = (maps[layer] @ v[0]).transpose(0, 1).reshape(11, -1)  # (nh, T, hs) -> (T, C)
            torch.testing.assert_close(block.attn.out_proj(y), block.attn(h, rotary)[0])
            x = block(x, rotary)
        torch.testing.assert_close(model.body.final_norm(x), model.body(ids))  # the same forward pass


@pytest.mark.parametrize("kind", ["pretrain", "finetune"])
def test_the_cli_writes_a_png(tmp_path, capsys, kind):
    pytest.importorskip("matplotlib")
    ckpt = make_checkpoint(tmp_path / "ckpt", kind)
    out = tmp_path / "maps" / "attention.png"
    cli(["--ckpt", str(ckpt), "--text", "The waiter praised the soup", "--out", str(out)])
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "1 layer(s) x 2 head(s)" in capsys.readouterr().out
    cli(["--ckpt", str(ckpt), "--text", "The soup", "--out", str(out), "--layer", "0", "--head", "1"])
    assert "1 layer(s) x 1 head(s)" in capsys.readouterr().out


def test_a_head_the_model_does_not_have_is_one_line(tmp_path, capsys):
    ckpt = make_checkpoint(tmp_path / "ckpt")
    with pytest.raises(SystemExit) as exit_info:
        cli(["--ckpt", str(ckpt), "--text", "soup", "--out", str(tmp_path / "a.png"), "--head", "2"])
    assert exit_info.value.code == 2
    assert "--head must be in 0..1" in capsys.readouterr().err


def test_without_matplotlib_it_says_what_to_install(tmp_path, capsys, monkeypatch):
    ckpt = make_checkpoint(tmp_path / "ckpt")
    monkeypatch.setattr(attention_map, "pyplot", lambda: None)
    with pytest.raises(SystemExit) as exit_info:
        cli(["--ckpt", str(ckpt), "--text", "soup", "--out", str(tmp_path / "a.png")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and 'pip install "minilm[plot]"' in err
    assert not (tmp_path / "a.png").exists()
