"""Data: the prompt-group dataset schema and loader, prompt vocabularies and groups, the synthetic
set and the converters of the nuclei datasets. Imports nothing else of pgat_hf but `atomic`."""
