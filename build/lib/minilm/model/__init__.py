"""The model: a GPT written out, and nothing else (this package imports torch only).

Read in this order: config.py (the shape) -> positional.py (word order) -> attention.py (tokens
read each other) -> gpt.py (blocks, the body, the language model and its loss) -> sampling.py
(generation) -> classifier.py (the body with a classification head, for fine-tuning).
"""
