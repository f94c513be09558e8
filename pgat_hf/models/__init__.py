"""Model-side building blocks: the pretrained static text side of the embedded model."""
