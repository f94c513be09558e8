"""The common case: a folder of images and a folder of instance-label files with the same stems.

CPM-15, CPM-17, CryoNuSeg, Histology and the generic ``folder`` source all reduce to this; they
differ only in where the two folders are and how the tissue is named.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np

from pgat_hf.data.converters.files import label_for, list_images
from pgat_hf.data.converters.readers import check_same_size, fail, read_instance_map, read_label_array, read_rgb
from pgat_hf.data.converters.spec import RawImage, loaded

_RENDERINGS = ("_poly", "_overlay")


def load_pair(image_path: Path, label_path: Path, class_path: Path | None = None,
              num_categories: int = 0, mat_key: str = "inst_map"):
    """Read one image and its instance map (and optional class map), checking sizes and ids."""
    rgb = read_rgb(image_path)
    instances = read_instance_map(label_path, mat_key)
    check_same_size(rgb, instances, image_path, label_path)
    classes = None
    if class_path is not None:
        classes = np.asarray(read_label_array(class_path, "class_map"))
        check_same_size(rgb, classes, image_path, class_path)
        # Integer and non-negative here; ids above the category count fail in loaded().
        if classes.dtype.kind == "f" and not np.all(classes == np.round(classes)):
            fail(class_path, "class map holds non-integer ids")
        if classes.size and classes.min() < 0:
            fail(class_path, "class map holds negative ids")
    return loaded(rgb, instances, classes, num_categories, class_path or label_path)


def paired_images(
    images_dir: Path,
    labels_dir: Path,
    id_prefix: str,
    tissue: Callable[[Path], str] | str = "unknown",
    classes_dir: Path | None = None,
    num_categories: int = 0,
    label_extensions: tuple[str, ...] | None = None,
) -> list[RawImage]:
    """One RawImage per image in ``images_dir``; every image must have a label file (the error
    names the image otherwise). Labels may carry a ``_mask`` / ``_label`` suffix. Renderings
    shipped beside the images (``*_poly.png``, ``*_overlay.png``) are skipped."""
    out, seen = [], {}
    for image in list_images(images_dir):
        if image.stem.lower().endswith(_RENDERINGS):
            continue
        if image.stem.lower() in seen:  # one stem, one label file: two images cannot share it
            fail(image, f"has the same name as {seen[image.stem.lower()].name} but for the extension; keep one")
        seen[image.stem.lower()] = image
        kwargs = {"extensions": label_extensions} if label_extensions else {}
        label = label_for(image, labels_dir, **kwargs)
        class_file = label_for(image, classes_dir) if classes_dir is not None else None
        name = tissue(image) if callable(tissue) else tissue
        out.append(RawImage(
            image_id=f"{id_prefix}-{image.stem}",
            tissue=name,
            path=str(image),
            load=partial(load_pair, image, label, class_file, num_categories),
        ))
    return out
