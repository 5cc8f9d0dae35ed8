"""`python -m minilm.pretrain`: pretrain a language model (the code is in minilm/train/pretrain.py)."""

from minilm.train.pretrain import cli

if __name__ == "__main__":
    cli()
