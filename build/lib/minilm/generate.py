"""`python -m minilm.generate`: sample text from a checkpoint (the code is in minilm/tools/generate.py)."""

from minilm.tools.generate import cli

if __name__ == "__main__":
    cli()
