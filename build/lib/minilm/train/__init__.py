"""Training: the job settings (config.py), the shared Trainer (optimizer, schedule, one step),
the learning-rate range test, and the two jobs that use them, pretrain.py and finetune.py."""
