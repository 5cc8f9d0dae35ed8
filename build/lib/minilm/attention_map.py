"""`python -m minilm.attention_map`: draw a checkpoint's attention (the code is in minilm/tools/attention_map.py)."""

from minilm.tools.attention_map import cli

if __name__ == "__main__":
    cli()
