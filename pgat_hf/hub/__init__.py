"""Hub: the `pipeline` task (and its remote-code copy), the model card and its template, the upload.
Imports `data`, `models` and `evaluation`."""
