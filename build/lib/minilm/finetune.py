"""`python -m minilm.finetune`: fine-tune a classifier (the code is in minilm/train/finetune.py)."""

from minilm.train.finetune import cli

if __name__ == "__main__":
    cli()
