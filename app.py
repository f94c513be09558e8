"""Hugging Face Space entry point: the prompt-robustness explorer (pgat_hf/hub/app.py).

Set the Space variable PGAT_MODEL to a checkpoint repo (and PGAT_COMPARE to a second one, e.g. the
plain fine-tuned baseline); locally, `python app.py` serves outputs/pgat-demo when it exists.
"""

from pgat_hf.hub.app import build_app, space_models

demo = build_app(space_models())

if __name__ == "__main__":
    demo.queue().launch(allowed_paths=getattr(demo, "pgat_allowed_paths", None))
