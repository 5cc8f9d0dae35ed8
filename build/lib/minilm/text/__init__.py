"""Text in, token ids out: corpora, the tokenizer, the LM token cache and batches, labeled files.

Not to be confused with the top-level data/ folder, which holds scripts that download and
prepare data sets. Read in this order: corpus.py -> tokenizer.py -> lm_data.py -> labeled.py
-> augment.py.
"""
