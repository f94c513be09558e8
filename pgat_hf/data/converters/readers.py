"""Reading raw images and instance-label files, with errors that name the offending file.

Everything a converter reads goes through here, so bad input fails the same way everywhere:
a :class:`ConversionError` whose message starts with the file path.

Label formats (one instance map per file, 0 = background, 1..N = nuclei):

- ``.png`` / ``.tif`` / ``.tiff``: single-channel label image (8, 16 or 32 bit);
- ``.mat``: a MATLAB v5 file with an ``inst_map`` array (HoVer-Net's CoNSeP / CPM / Kumar layout);
- ``.npy``: a 2-D integer array;
- ``_mask.txt``: the CPM-15 challenge's ASCII format, first line ``width height`` then one id per
  pixel in row-major order.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from pgat_hf.sam3_ops import intensities_to_uint8, pil_to_rgb
from skimage.segmentation import relabel_sequential

IMAGE_EXTENSIONS = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp")
LABEL_EXTENSIONS = (".png", ".tif", ".tiff", ".mat", ".npy", ".txt")
MAX_INSTANCES = np.iinfo(np.uint16).max  # instance maps are stored as 16-bit PNGs


class ConversionError(ValueError):
    """Raw input that cannot be converted; the message names the file."""


def fail(path, message: str) -> None:
    raise ConversionError(f"{path}: {message}")


def require_file(path: Path, what: str) -> Path:
    if not Path(path).is_file():
        fail(path, f"{what} not found")
    return Path(path)


# ------------------------------------------------------------------------------------------
# Images
# ------------------------------------------------------------------------------------------


def as_rgb(array: np.ndarray, path) -> np.ndarray:
    """(H, W), (H, W, 1), (H, W, 3) or (H, W, 4) intensities → uint8 (H, W, 3)."""
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        fail(path, f"expected an (H, W), (H, W, 3) or (H, W, 4) image, got shape {array.shape}")
    if not np.isfinite(array).all():
        fail(path, "image holds NaN or infinite values")
    # the conversion the pipeline applies too; [..., :3]: CoNSeP PNGs carry an alpha channel
    return np.ascontiguousarray(intensities_to_uint8(array[..., :3]))


def read_rgb(path) -> np.ndarray:
    """Image file → uint8 (H, W, 3). PIL first; tifffile for TIFFs PIL cannot decode."""
    path = require_file(Path(path), "image")
    try:
        with Image.open(path) as opened:
            opened.load()
            image = opened.copy()
    except Exception as err:  # noqa: BLE001 - any decoder failure is a corrupt/unknown image
        if path.suffix.lower() not in (".tif", ".tiff"):
            fail(path, f"cannot read image ({err})")
        try:
            import tifffile

            array = tifffile.imread(path)
        except Exception as tiff_err:  # noqa: BLE001
            fail(path, f"cannot read image ({tiff_err})")
        return as_rgb(array, path)
    try:  # the pipeline's reading: EXIF orientation applied, colour modes as the RGB they show
        shown = pil_to_rgb(image)
    except ValueError as err:  # a binary mode-"1" image, or a mode with no RGB meaning
        fail(path, str(err))
    return as_rgb(np.asarray(shown), path)  # 16/32-bit grey arrives as an array: stretched there


# ------------------------------------------------------------------------------------------
# Labels
# ------------------------------------------------------------------------------------------
def load_mat(path) -> dict:
    """MATLAB v5 file → dict of arrays (v7.3 / HDF5 files are reported, not guessed at)."""
    from scipy.io import loadmat

    path = require_file(Path(path), "label file")
    try:
        return loadmat(path)
    except Exception as err:  # noqa: BLE001
        fail(path, f"cannot read .mat file ({err}); MATLAB v7.3 files must be re-saved as v5")


def mat_array(contents: dict, key: str, path) -> np.ndarray:
    if key not in contents:
        keys = sorted(k for k in contents if not k.startswith("__"))
        fail(path, f"no {key!r} array in the .mat file (it holds {keys})")
    return np.asarray(contents[key])


def _read_ascii_mask(path: Path) -> np.ndarray:
    values = np.array(path.read_text().split(), dtype=np.float64)  # header has 2 values a line
    if values.size < 2:
        fail(path, "ASCII mask is empty")
    width, height = int(values[0]), int(values[1])
    pixels = values[2:]
    if pixels.size != width * height:
        fail(path, f"ASCII mask header says {width}x{height} but holds {pixels.size} values")
    return pixels.reshape(height, width)


def read_label_array(path, mat_key: str = "inst_map") -> np.ndarray:
    """Label file (see module docstring) → raw 2-D array, not yet checked."""
    path = require_file(Path(path), "label file")
    suffix = path.suffix.lower()
    try:
        if suffix == ".mat":
            return mat_array(load_mat(path), mat_key, path)
        if suffix == ".npy":
            return np.load(path, allow_pickle=False)
        if suffix == ".txt":
            return _read_ascii_mask(path)
        with Image.open(path) as img:
            if img.mode in ("RGB", "RGBA", "CMYK", "LA"):
                fail(path, f"label image must be single-channel instance ids, got mode {img.mode!r}")
            return np.asarray(img)
    except ConversionError:
        raise
    except Exception as err:  # noqa: BLE001
        if suffix in (".tif", ".tiff"):
            try:
                import tifffile

                return tifffile.imread(path)
            except Exception:  # noqa: BLE001 - report the first error, it is the clearer one
                pass
        fail(path, f"cannot read label file ({err})")


def as_instance_ids(array: np.ndarray, path) -> np.ndarray:
    """Check a raw label array and relabel it to int32 ids 1..N (0 = background).

    Errors (naming ``path``): not 2-D, non-finite, non-integer or negative values, > 65535 nuclei.
    """
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim != 2:
        fail(path, f"instance map must be 2-D (H, W), got shape {array.shape}")
    if array.dtype.kind not in "biuf":
        fail(path, f"instance map has non-numeric dtype {array.dtype}")
    if array.dtype.kind == "f":
        if not np.isfinite(array).all():
            fail(path, "instance map holds NaN or infinite values")
        if not np.all(array == np.round(array)):
            fail(path, "instance map holds non-integer ids")
    if array.size and array.min() < 0:
        fail(path, f"instance map holds negative ids (min {array.min()})")
    ids = array.astype(np.int64)
    relabelled, _, _ = relabel_sequential(ids)
    if relabelled.size and relabelled.max() > MAX_INSTANCES:
        fail(path, f"{relabelled.max()} nuclei do not fit a 16-bit instance map")
    return relabelled.astype(np.int32)


def check_not_binary(ids: np.ndarray, path) -> None:
    """A 0/255 (or 0/1) semantic mask read as instance ids would be one nucleus: stop instead.

    One id over three or more separate regions is taken for a binary mask; a single nucleus may
    be cut in two by a neighbour drawn over it, so two regions pass.
    """
    values = np.unique(ids[ids > 0])
    if values.size != 1:
        return
    from scipy import ndimage

    _, regions = ndimage.label(ids > 0)
    if regions >= 3:
        fail(path, f"holds one id ({values[0]}) over {regions} separate regions: a binary mask, not "
                   "instance ids; give each nucleus its own id (e.g. skimage.measure.label on the mask)")


def read_instance_map(path, mat_key: str = "inst_map") -> np.ndarray:
    """Label file → int32 (H, W) ids 1..N; a binary mask stops with an error naming the file."""
    raw = read_label_array(path, mat_key)
    ids = as_instance_ids(raw, path)
    check_not_binary(np.asarray(raw).reshape(ids.shape).astype(np.int64), path)  # the file's own ids
    return ids


def check_same_size(image: np.ndarray, label: np.ndarray, image_path, label_path) -> None:
    if image.shape[:2] != label.shape[:2]:
        fail(
            label_path,
            f"size {label.shape[:2]} does not match image {image_path} of size {image.shape[:2]}",
        )
