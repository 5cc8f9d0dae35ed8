"""minilm: a from-scratch GPT-style transformer — pretrain a language model, fine-tune a classifier.

The public API (see docs/ and ARCHITECTURE in the README):

    from minilm import ModelConfig, MiniLM, MiniLMForSequenceClassification
"""

from minilm.classifier import MiniLMForSequenceClassification
from minilm.config import ModelConfig
from minilm.model import MiniLM

__all__ = ["ModelConfig", "MiniLM", "MiniLMForSequenceClassification"]
__version__ = "0.1.0"
