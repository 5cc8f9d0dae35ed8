"""Fine-tune a pretrained MiniLM as a classifier: `python train_finetune.py --help` lists every flag.

A thin entry point; the job itself is minilm/finetune.py.
"""

from minilm.finetune import cli

if __name__ == "__main__":
    cli()
