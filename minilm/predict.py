"""`python -m minilm.predict`: classify texts with a fine-tuned model (the code is in minilm/tools/predict.py)."""

from minilm.tools.predict import cli

if __name__ == "__main__":
    cli()
