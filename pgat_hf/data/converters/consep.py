"""CoNSeP (Graham et al. 2019, HoVer-Net): 41 colorectal H&E tiles of 1000×1000, seven types.

Expected raw layout (the CoNSeP zip from https://warwick.ac.uk/fac/cross_fac/tia/data/hovernet,
any nesting, folder names in any case):

    RAW/Train/Images/train_1.png ...   RGB(A) PNG, 1000×1000 (the alpha channel is dropped)
    RAW/Train/Labels/train_1.mat ...   MATLAB v5: inst_map (H, W) instance ids,
                                       type_map (H, W) per-pixel type 0..7,
                                       inst_type (N, 1) type of instance i at row i-1
    RAW/Test/Images/test_1.png ...  RAW/Test/Labels/test_1.mat ...   (Overlay/ is ignored)

The seven types merge into the usual four (as in the HoVer-Net paper): 1 other → other;
2 inflammatory → inflammatory; 3 healthy + 4 malignant/dysplastic epithelial → epithelial;
5 fibroblast + 6 muscle + 7 endothelial → spindle-shaped. Each nucleus takes its class from
``inst_type`` (one class per nucleus); ``type_map`` is used only where ``inst_type`` is absent.
One config, ``consep``, splits train and test; tiles are cut by the builder (--tile-size).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
from scipy import ndimage

from pgat_hf.data.converters.files import child_dir, find_dir, label_for, list_images
from pgat_hf.data.converters.readers import as_instance_ids, check_same_size, fail, load_mat, mat_array, read_rgb
from pgat_hf.data.converters.spec import ConfigSpec, RawImage, SourceInfo, loaded

CATEGORIES = ["other", "inflammatory", "epithelial", "spindle-shaped"]
# CoNSeP type id → index into CATEGORIES (+1); 0 stays unlabelled.
TYPE_TO_CLASS = np.array([0, 1, 2, 3, 3, 4, 4, 4], np.int32)

INFO = SourceInfo(
    name="consep",
    title="CoNSeP (colorectal nuclear segmentation and phenotypes)",
    homepage="https://warwick.ac.uk/fac/cross_fac/tia/data/hovernet",
    licence="other",
    licence_note="Released by TIA Centre, University of Warwick, for research use; see the homepage.",
    citation=(
        "Graham S, Vu QD, Raza SEA, Azam A, Tsang YW, Kwak JT, Rajpoot N. HoVer-Net: Simultaneous "
        "segmentation and classification of nuclei in multi-tissue histology images. Medical "
        "Image Analysis 58 (2019) 101563."
    ),
    description="1000×1000 colorectal adenocarcinoma H&E tiles at 40×; 7 types merged to 4.",
)


def map_types(type_ids: np.ndarray, path) -> np.ndarray:
    """CoNSeP type ids (0..7) → class ids (0..4); other values are an error naming ``path``."""
    values = np.asarray(type_ids)
    if values.dtype.kind == "f" and not np.all(values == np.round(values)):
        fail(path, "type ids must be integers")
    values = values.astype(np.int64)
    bad = sorted(set(np.unique(values).tolist()) - set(range(len(TYPE_TO_CLASS))))
    if bad:
        fail(path, f"unknown CoNSeP type ids {bad}; expected 0..7")
    return TYPE_TO_CLASS[values]


def class_map(instances: np.ndarray, contents: dict, path) -> np.ndarray:
    """Per-nucleus class map from ``inst_type`` (or, failing that, majority ``type_map``)."""
    count = int(instances.max()) if instances.size else 0
    if "inst_type" in contents:
        per_instance = map_types(mat_array(contents, "inst_type", path).ravel(), path)
        if per_instance.size < count:
            fail(path, f"inst_type has {per_instance.size} entries but inst_map has {count} nuclei")
        lookup = np.concatenate([[0], per_instance[:count]]).astype(np.int32)
        return lookup[instances]
    types = map_types(mat_array(contents, "type_map", path), path)
    if count == 0:
        return np.zeros_like(instances)
    # Majority vote inside each nucleus keeps one class per nucleus.
    votes = [ndimage.sum_labels(types == c, instances, np.arange(1, count + 1)) for c in range(5)]
    lookup = np.concatenate([[0], np.argmax(np.stack(votes), axis=0)]).astype(np.int32)
    return lookup[instances]


def _load(image_path: Path, label_path: Path):
    rgb = read_rgb(image_path)
    contents = load_mat(label_path)
    raw_instances = mat_array(contents, "inst_map", label_path)
    check_same_size(rgb, raw_instances, image_path, label_path)
    ids = as_instance_ids(raw_instances, label_path)  # checks the ids, then renumbers 1..N
    # inst_type is indexed by the file's own ids, so classes come from the ids as stored.
    classes = class_map(np.asarray(raw_instances).astype(np.int64), contents, label_path)
    return loaded(rgb, ids, classes, len(CATEGORIES), label_path)


def convert(raw: Path) -> list[ConfigSpec]:
    spec = ConfigSpec("consep", list(CATEGORIES))
    for split in ("train", "test"):
        split_dir = find_dir(raw, split, required=False)
        if split_dir is None:
            continue
        images_dir, labels_dir = child_dir(split_dir, "images"), child_dir(split_dir, "labels")
        if images_dir is None or labels_dir is None:
            fail(split_dir, "expected Images/ and Labels/ folders inside")
        spec.splits[split] = [
            RawImage(
                image_id=f"consep-{image.stem}",
                tissue="colon",
                path=str(image),
                load=partial(_load, image, label_for(image, labels_dir, extensions=(".mat",))),
            )
            for image in list_images(images_dir)
        ]
    if not spec.splits:
        fail(raw, "no CoNSeP Train/ or Test/ folder below this folder")
    return [spec]
