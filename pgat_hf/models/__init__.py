"""Models: the SAM3 and CLIPSeg backends, the segmenter wrapper, its tokenizer, text side, image
preprocessing and LoRA, and inference (one image, P prompts -> P masks). Imports only `data`."""
