"""Build a prompt-group nuclei dataset config from a downloaded source (docs/design.md §3, §4).

    python dataset_scripts/build.py --source NAME --raw DIR --out DIR \
        [--train-fraction 1.0 --seed 0] [--tile-size 256 --overlap 0] [--config-name NAME] \
        [--prompts FILE] [--validate] [--push-to-hub ORG/NAME]
    python dataset_scripts/build.py --validate --out DIR          # only check a built folder

NAME: pannuke, consep, monuseg, cpm15, cpm17, cryonuseg, histology, synthetic, folder
(DIR/images + DIR/masks, same file stems). The files each source expects are listed in
pgat_hf/data/converters/<source>.py. Several sources can be built into the same --out folder: each
becomes a config of one repo, and README.md (the dataset card) is re-rendered to cover them all.
``--prompts FILE`` takes the prompt vocabulary (category synonyms, held-out synonyms, templates) from
a YAML file in the format of pgat_hf/data/vocabularies/default.yaml; the file used is saved beside the
data as prompts.yaml. Same arguments, byte-identical parquet files. ``--train-fraction`` keeps a seeded share of the
*training* images (the paper trains on 10%); validation/test splits are always kept whole.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

try:
    import pgat_hf  # noqa: F401
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pgat_hf.data.converters import SOURCES, ConversionError, build_source, validate_dataset_folder
from pgat_hf.data.vocabulary import load_vocabulary


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", choices=sorted(SOURCES), help="which dataset --raw holds")
    parser.add_argument("--raw", help="the unpacked download (not needed for synthetic)")
    parser.add_argument("--out", required=True, help="dataset repo folder (created; other configs kept)")
    parser.add_argument("--train-fraction", type=float, default=1.0,
                        help="seeded share of training images to keep, in (0, 1] (paper: 0.1)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the subset and the prompt text")
    parser.add_argument("--tile-size", type=int, default=256,
                        help="cut larger images into tiles of this side; 0 keeps images whole")
    parser.add_argument("--overlap", type=int, default=0, help="minimum overlap of neighbouring tiles (px)")
    parser.add_argument("--config-name", default=None,
                        help="config name (folder source: default the folder's name; one-config sources only)")
    parser.add_argument("--prompts", metavar="FILE", default=None,
                        help="prompt vocabulary YAML (default: pgat_hf/data/vocabularies/default.yaml)")
    parser.add_argument("--validate", action="store_true", help="check the built folder afterwards")
    parser.add_argument("--push-to-hub", metavar="ORG/NAME", default=None,
                        help="upload the folder as a Hub dataset repo (needs a token with write access)")
    parser.add_argument("--private", action="store_true", help="create the Hub repo as private")
    args = parser.parse_args(argv)
    if args.source is None and not args.validate:
        parser.error("--source is required unless only --validate is asked for")
    if args.source not in (None, "synthetic") and not args.raw:
        parser.error(f"--raw is required for --source {args.source}")
    if args.tile_size < 0 or args.overlap < 0:
        parser.error("--tile-size and --overlap must be 0 or more")
    # A config name is a folder name and a `datasets` config name: no separators, wildcards or dots.
    if args.config_name is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*", args.config_name):
        parser.error(f"--config-name {args.config_name!r}: use letters, digits, '_' and '-' only")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        if args.source:
            vocabulary = load_vocabulary(args.prompts) if args.prompts else None
            configs = build_source(
                args.source, args.raw, args.out, train_fraction=args.train_fraction, seed=args.seed,
                tile_size=args.tile_size, overlap=args.overlap, config_name=args.config_name,
                vocabulary=vocabulary,
            )
            print(f"wrote config(s) {', '.join(configs)} to {args.out}")
        if args.validate:
            summary = validate_dataset_folder(args.out)
            for config, splits in summary.items():
                print(f"ok {config}: " + ", ".join(f"{s} {n} rows" for s, n in splits.items()))
    except (ConversionError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if args.push_to_hub:
        from pgat_hf.data.converters.hub import push_dataset_folder

        print(f"pushed to {push_dataset_folder(args.out, args.push_to_hub, private=args.private)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
