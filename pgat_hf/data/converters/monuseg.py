"""MoNuSeg 2018 / Kumar (Kumar et al. 2017): 1000×1000 TCGA H&E tiles with polygon annotations.

Expected raw layout (the MoNuSeg challenge zips from https://monuseg.grand-challenge.org, any
nesting; images and XML are paired by file stem wherever they sit below RAW, skipping hidden
files, macOS metadata and folders of masks, labels or overlays):

    RAW/MoNuSeg 2018 Training Data/Tissue Images/TCGA-18-5592-01Z-00-DX1.tif ...   (30 RGB tiles)
    RAW/MoNuSeg 2018 Training Data/Annotations/TCGA-18-5592-01Z-00-DX1.xml ...
    RAW/MoNuSegTestData/TCGA-2Z-A9J9-01A-01-TS1.tif + .xml ...   (14 test tiles; optional)

Each XML holds Annotations → Annotation → Regions → Region → Vertices → Vertex (X, Y attributes,
pixel coordinates); every Region is one nucleus, rasterised with skimage.draw.polygon (where two
polygons overlap, the later Region wins).

Configs: ``monuseg`` (train = the 30 training tiles, test = the 14 test tiles when present);
``kumar_same`` and ``kumar_diff`` (split test): the standard Kumar test split as published with
HoVer-Net (vqdang/hover_net data/README.md): 8 tiles of organs seen in training (breast, kidney,
liver, prostate) and 6 of unseen organs (bladder, colon, stomach). Both are drawn from the MoNuSeg
*training* folder, so train on ``monuseg`` and test on ``kumar_*`` only with a fresh model.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from functools import partial
from pathlib import Path

import numpy as np
from skimage.draw import polygon

from pgat_hf.data.converters.readers import IMAGE_EXTENSIONS, as_instance_ids, fail, read_rgb
from pgat_hf.data.converters.spec import ConfigSpec, RawImage, SourceInfo, loaded

# Two tiles of each training organ: breast, kidney, liver, prostate.
KUMAR_SAME = [
    "TCGA-E2-A1B5-01Z-00-DX1", "TCGA-E2-A14V-01Z-00-DX1", "TCGA-B0-5698-01Z-00-DX1",
    "TCGA-B0-5710-01Z-00-DX1", "TCGA-21-5784-01Z-00-DX1", "TCGA-21-5786-01Z-00-DX1",
    "TCGA-CH-5767-01Z-00-DX1", "TCGA-G9-6362-01Z-00-DX1",
]
KUMAR_DIFF = [
    "TCGA-AY-A8YK-01A-01-TS1", "TCGA-DK-A2I6-01A-01-TS1", "TCGA-KB-A93J-01A-01-TS1",
    "TCGA-NH-A8F7-01A-01-TS1", "TCGA-RD-A8N9-01A-01-TS1", "TCGA-G2-A2EK-01A-02-TSB",
]
# Organ of each tile by TCGA patient prefix, as MoNuSeg lists them: the 30 training tiles, then the 14 test tiles.
ORGANS = {
    **dict.fromkeys(["TCGA-18-5592", "TCGA-21-5784", "TCGA-21-5786", "TCGA-38-6178",
                     "TCGA-49-4488", "TCGA-50-5931"], "liver"),
    **dict.fromkeys(["TCGA-A7-A13E", "TCGA-A7-A13F", "TCGA-AR-A1AK", "TCGA-AR-A1AS",
                     "TCGA-E2-A14V", "TCGA-E2-A1B5"], "breast"),
    **dict.fromkeys(["TCGA-B0-5698", "TCGA-B0-5710", "TCGA-B0-5711", "TCGA-HE-7128",
                     "TCGA-HE-7129", "TCGA-HE-7130"], "kidney"),
    **dict.fromkeys(["TCGA-G9-6336", "TCGA-G9-6348", "TCGA-G9-6356", "TCGA-G9-6362",
                     "TCGA-G9-6363", "TCGA-CH-5767"], "prostate"),
    **dict.fromkeys(["TCGA-DK-A2I6", "TCGA-G2-A2EK"], "bladder"),
    **dict.fromkeys(["TCGA-AY-A8YK", "TCGA-NH-A8F7"], "colon"),
    **dict.fromkeys(["TCGA-KB-A93J", "TCGA-RD-A8N9"], "stomach"),
}
TEST_ORGANS = {
    **dict.fromkeys(["TCGA-AC-A2FO", "TCGA-AO-A0J2"], "breast"),
    **dict.fromkeys(["TCGA-2Z-A9J9", "TCGA-GL-6846", "TCGA-IZ-8196"], "kidney"),
    **dict.fromkeys(["TCGA-44-2665", "TCGA-69-7764"], "lung"),
    **dict.fromkeys(["TCGA-EJ-A46H", "TCGA-HC-7209"], "prostate"),
    **dict.fromkeys(["TCGA-CU-A0YN", "TCGA-ZF-A9R5"], "bladder"),
    **dict.fromkeys(["TCGA-A6-6782"], "colon"),
    **dict.fromkeys(["TCGA-FG-A4MU", "TCGA-HT-8564"], "brain"),
}

INFO = SourceInfo(
    name="monuseg",
    title="MoNuSeg 2018 / Kumar",
    homepage="https://monuseg.grand-challenge.org",
    licence="cc-by-nc-sa-4.0",
    licence_note="CC BY-NC-SA 4.0 (non-commercial, share-alike): derived data keeps that licence.",
    citation=(
        "Kumar N, Verma R, Sharma S, Bhargava S, Vahadane A, Sethi A. A dataset and a technique for "
        "generalized nuclear segmentation for computational pathology. IEEE TMI 36(7) (2017); "
        "Kumar N et al. A multi-organ nucleus segmentation challenge. IEEE TMI 39(5) (2020)."
    ),
    description="1000×1000 TCGA H&E tiles at 40× from 7 (train) + 7 (test) organs; no classes.",
)


def rasterise_xml(path: Path, shape: tuple[int, int]) -> np.ndarray:
    """MoNuSeg XML → int32 (H, W) instance map, Region k → id k (1-based, in file order)."""
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as err:
        fail(path, f"cannot parse annotation XML ({err})")
    instances = np.zeros(shape, np.int32)
    regions = root.iter("Region")
    for number, region in enumerate(regions, start=1):
        try:
            points = [(float(v.get("X")), float(v.get("Y"))) for v in region.iter("Vertex")]
        except (TypeError, ValueError):
            fail(path, f"Region {region.get('Id', number)} has a Vertex without numeric X/Y")
        if len(points) < 3:
            continue  # a point or a line encloses no pixels
        xs, ys = np.array(points).T
        rows, cols = polygon(ys, xs, shape=shape)
        instances[rows, cols] = number
    return instances


def _load(image_path: Path, xml_path: Path):
    rgb = read_rgb(image_path)
    instances = as_instance_ids(rasterise_xml(xml_path, rgb.shape[:2]), xml_path)
    return loaded(rgb, instances, None, 0, xml_path)


def _is_hidden(path: Path, raw: Path) -> bool:
    """Hidden files and macOS metadata (``__MACOSX/``, ``._name``), which unzipping leaves beside tiles."""
    return any(part.startswith(".") or part.lower() == "__macosx" for part in path.relative_to(raw).parts)


def _in_mask_folder(path: Path, raw: Path) -> bool:
    """In a folder of masks, labels or overlays that users add beside the tissue images."""
    folders = [part.lower() for part in path.relative_to(raw).parts[:-1]]
    return any(word in part for part in folders for word in ("mask", "label", "overlay"))


def _pairs(raw: Path) -> dict[str, tuple[Path, Path]]:
    """stem → (image, xml) for every annotated tile below ``raw``."""
    files = [p for p in sorted(raw.rglob("*")) if p.is_file() and not _is_hidden(p, raw)]
    xmls: dict[str, Path] = {}
    for path in (p for p in files if p.suffix.lower() == ".xml"):
        if path.stem in xmls:
            fail(path, f"a second annotation of {path.stem} (the first is {xmls[path.stem]}): keep one")
        xmls[path.stem] = path
    if not xmls:
        fail(raw, "no MoNuSeg .xml annotation files below this folder")
    candidates: dict[str, list[Path]] = {}
    for path in files:
        if path.suffix.lower() in IMAGE_EXTENSIONS and path.stem in xmls and not _in_mask_folder(path, raw):
            candidates.setdefault(path.stem, []).append(path)
    pairs = {}
    for stem, xml in xmls.items():
        images = candidates.get(stem, [])
        tifs = [p for p in images if p.suffix.lower() in (".tif", ".tiff")]
        chosen = tifs if len(images) > 1 and tifs else images  # MoNuSeg ships .tif: prefer it
        if not chosen:
            fail(xml, f"no image {stem}.tif next to or near this annotation")
        if len(chosen) > 1:
            fail(xml, f"{len(chosen)} images could be this annotation's tile "
                      f"({', '.join(str(p) for p in chosen)}): keep one")
        pairs[stem] = (chosen[0], xml)
    return pairs


def _raw_image(stem: str, image: Path, xml: Path) -> RawImage:
    patient = "-".join(stem.split("-")[:3])
    tissue = ORGANS.get(patient) or TEST_ORGANS.get(patient, "unknown")
    return RawImage(f"monuseg-{stem}", tissue, str(image), partial(_load, image, xml))


def convert(raw: Path) -> list[ConfigSpec]:
    raw = Path(raw).resolve()
    pairs = _pairs(raw)
    # A tile is a test tile when a folder on its path, ``raw`` itself included, says "test"
    # ("MoNuSegTestData"), so --raw pointed at the test folder alone keeps its tiles in test.
    is_test = {stem: "test" in str(image.parent.relative_to(raw.parent)).lower()
               for stem, (image, _) in pairs.items()}
    monuseg = ConfigSpec("monuseg", [])
    for split in ("train", "test"):
        members = [_raw_image(s, *pairs[s]) for s in sorted(pairs) if is_test[s] == (split == "test")]
        if members:
            monuseg.splits[split] = members
    specs = [monuseg]
    for name, stems in (("kumar_same", KUMAR_SAME), ("kumar_diff", KUMAR_DIFF)):
        members = [_raw_image(s, *pairs[s]) for s in stems if s in pairs]
        if members:
            specs.append(ConfigSpec(name, [], {"test": members}))
    return specs
