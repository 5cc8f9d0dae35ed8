"""Fine-tune a pretrained MiniLM as a classifier: `python train_finetune.py --help` lists every flag.

A thin entry point; the job itself is minilm/train/finetune.py.
"""

from minilm.train.finetune import cli

if __name__ == "__main__":
    cli()
