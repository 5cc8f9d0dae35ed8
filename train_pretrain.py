"""Pretrain a MiniLM language model: `python train_pretrain.py --help` lists every flag.

A thin entry point; the job itself is minilm/train/pretrain.py.
"""

from minilm.train.pretrain import cli

if __name__ == "__main__":
    cli()
