"""`python -m minilm.evaluate`: a checkpoint's perplexity and bits per byte (the code: minilm/tools/evaluate.py)."""

from minilm.tools.evaluate import cli

if __name__ == "__main__":
    cli()
