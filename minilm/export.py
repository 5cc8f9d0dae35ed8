"""`python -m minilm.export`: to transformers or ONNX, or from transformers (code: minilm/interop/export.py)."""

from minilm.interop.export import cli

if __name__ == "__main__":
    cli()
