"""Models that leave home: the Python API's files, Hugging Face transformers and ONNX.

    pretrained.py     from_pretrained / save_pretrained / predict behind the model classes' methods
    hf_weights.py     the rule tables' machinery: one rule per minilm tensor, used in both directions
    hf_gpt2.py, hf_neox.py, hf_llama.py   one standard architecture each: its config and its rules
    hf_choose.py      which architecture computes a given minilm model's function, or why none does
    hf_tokenizer.py   minilm's SentencePiece model as a transformers tokenizer.json
    hf_export.py      checkpoint dir -> HF dir;  hf_import.py: HF dir -> checkpoint dir
    onnx_export.py    checkpoint dir -> model.onnx (LM logits or class probabilities)
    export.py         the `python -m minilm.export` command
transformers, safetensors and onnx are optional (`pip install minilm[hf,onnx]`): they are imported
inside the functions that need them.
"""
