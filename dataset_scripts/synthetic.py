"""Build the synthetic H&E-like nuclei dataset as a local dataset folder (config "synthetic").

    python dataset_scripts/synthetic.py --out data/pgat [--num-train 400 --num-test 64 \
        --num-validation 32 --image-size 128 --seed 0] [--preview preview.png]

The defaults are the demo recipe's, so `pgat_hf/train.py --config pgat_hf/recipes/demo.yaml
--dataset_path OUT` trains on the folder as built instead of rebuilding it.

The folder then opens offline with ``datasets.load_dataset(OUT, "synthetic")``. Same arguments,
byte-identical parquet files.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

try:
    import pgat_hf  # noqa: F401
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pgat_hf.data.synthetic import DEMO_VALIDATION_TILES, generate_synthetic_dataset, preview_grid


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="dataset folder (created; other configs kept)")
    parser.add_argument("--num-train", type=int, default=400, help="training tiles")
    parser.add_argument("--num-test", type=int, default=64, help="test tiles")
    parser.add_argument("--num-validation", type=int, default=DEMO_VALIDATION_TILES,
                        help="validation tiles (evaluations during training and setting choices run here)")
    parser.add_argument("--image-size", type=int, default=128, help="tile side in pixels")
    parser.add_argument("--seed", type=int, default=0, help="seed of tiles and prompt text")
    parser.add_argument("--config-name", default="synthetic", help="config (subfolder) name")
    parser.add_argument("--preview", default=None, help="also save a tiles-over-class-maps PNG here")
    args = parser.parse_args(argv)

    path = generate_synthetic_dataset(
        args.out, num_train=args.num_train, num_test=args.num_test, num_validation=args.num_validation,
        image_size=args.image_size, seed=args.seed, config_name=args.config_name,
    )
    if args.preview:
        from PIL import Image

        Image.fromarray(preview_grid(8, args.image_size, args.seed)).save(args.preview)
    print(f"wrote config {args.config_name!r} to {path}")
    return path


if __name__ == "__main__":
    main()
