"""Training: arguments, the K-prompt collator, the PGAT loss, the Trainer subclass and its
crash-safe checkpoints. Imports `data`, `models` and `evaluation`."""
