"""minilm: a from-scratch GPT-style transformer — pretrain a language model, fine-tune a classifier.

The public API (the README's "What is where" maps the rest):

    from minilm import ModelConfig, MiniLM, MiniLMForSequenceClassification

The package, in the order to read it:
    model/     the GPT itself: config, positions, attention, blocks, sampling, classifier (torch only)
    text/      corpus -> tokenizer -> token cache and batches; labeled files
    common/    errors, atomic files, the out dir, device/precision, flags, plots
    checkpoint.py   building models and tokenizers from a saved dir
    tools/     generate, evaluate, predict, attention maps, metrics
    train/     the Trainer and the two jobs, pretraining and fine-tuning
    reviews/   the embedded review world (the default data)
The other top-level modules are the commands: `python -m minilm.generate`, ...
"""

from minilm.model.classifier import MiniLMForSequenceClassification
from minilm.model.config import ModelConfig
from minilm.model.gpt import MiniLM

__all__ = ["ModelConfig", "MiniLM", "MiniLMForSequenceClassification"]
__version__ = "0.1.0"
