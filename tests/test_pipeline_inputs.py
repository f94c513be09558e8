"""What the pipeline accepts and how it reads it: EXIF orientation, float and TIFF images, PIL
modes, and its call parameters, on a trained tiny checkpoint and real image files."""

import numpy as np
import pytest
from PIL import Image, UnidentifiedImageError
from transformers import pipeline

import pgat_hf  # noqa: F401  (registers the task)
from pgat_hf.hub.pipeline import load_image
from pgat_hf.sam3_ops import intensities_to_uint8

EXIF_ORIENTATION = 0x0112
PROMPTS = ["all nuclei", "inflammatory nuclei"]


@pytest.fixture(scope="module")
def seg(trained_checkpoint):
    return pipeline("text-guided-nuclei-segmentation", model=str(trained_checkpoint[0]))


@pytest.fixture(scope="module")
def tile(synthetic_splits):
    return synthetic_splits["test"][0]["image"].convert("RGB")


@pytest.fixture(scope="module")
def wide(synthetic_splits):
    """Two 64-px test tiles side by side: 128 wide, 64 high, so a quarter turn changes the size."""
    return np.concatenate([np.asarray(synthetic_splits["test"][i]["image"].convert("RGB")) for i in (0, 1)], axis=1)


def masks(results):
    return [np.asarray(result["mask"]) for result in results]


# ---------------------------------------------------------------------------------------------
# intensities_to_uint8: one tile, the same pixels whatever type it arrives in
# ---------------------------------------------------------------------------------------------


def test_intensities_of_one_tile_give_its_uint8_pixels_in_every_type():
    pixels = np.random.default_rng(0).integers(20, 231, (9, 11, 3), dtype=np.uint8)  # not 0..255: a stretch shows
    for array in (pixels / 255.0, (pixels / 255.0).astype(np.float32), pixels.astype(np.float64),
                  pixels.astype(np.float32), pixels.astype(np.uint16), pixels.astype(np.int32)):
        np.testing.assert_array_equal(intensities_to_uint8(array), pixels, err_msg=str(array.dtype))
    assert intensities_to_uint8(pixels) is pixels  # uint8 is kept as it is


def test_intensities_rules_on_known_values():
    np.testing.assert_array_equal(intensities_to_uint8(np.array([0.2, 0.6, 1.0])), [51, 153, 255])  # 0..1: x 255
    np.testing.assert_array_equal(intensities_to_uint8(np.array([0.4, 100.6, 254.6])), [0, 101, 255])  # rounded
    np.testing.assert_array_equal(intensities_to_uint8(np.array([0, 1000, 2000], np.uint16)), [0, 128, 255])
    np.testing.assert_array_equal(intensities_to_uint8(np.array([-1.0, 0.0, 1.0])), [0, 128, 255])  # stretched
    np.testing.assert_array_equal(intensities_to_uint8(np.array([100.0, 300.0])), [0, 255])
    np.testing.assert_array_equal(intensities_to_uint8(np.array([7, 7], np.uint16)), [7, 7])  # within 0..255: cast
    assert intensities_to_uint8(np.zeros((0, 4), np.uint16)).shape == (0, 4)


def test_a_float_tile_in_0_1_gives_the_masks_of_its_uint8_version(seg, tile):
    rgb = np.asarray(tile)
    expected = masks(seg(rgb, prompts=PROMPTS, threshold=0.3))
    assert any(mask.any() for mask in expected)
    for array in (rgb / 255.0, rgb.astype(np.float32) / 255.0):  # skimage's img_as_float gives the first
        np.testing.assert_array_equal(np.asarray(load_image(array)), rgb)
        for got, want in zip(masks(seg(array, prompts=PROMPTS, threshold=0.3)), expected):
            np.testing.assert_array_equal(got, want)


# ---------------------------------------------------------------------------------------------
# Files: EXIF orientation, TIFFs PIL cannot decode
# ---------------------------------------------------------------------------------------------


def test_an_exif_rotated_jpeg_is_segmented_as_displayed(seg, wide, tmp_path):
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 6  # "rotate 90 degrees clockwise to display", as phones write it
    path = tmp_path / "rotated.jpg"
    Image.fromarray(wide).save(path, "JPEG", quality=95, exif=exif)
    with Image.open(path) as stored:
        assert stored.size == (128, 64) and stored.getexif()[EXIF_ORIENTATION] == 6
        decoded = np.asarray(stored.convert("RGB"))
    displayed = np.rot90(decoded, k=-1)  # clockwise quarter turn: 64 wide, 128 high
    assert displayed.shape == (128, 64, 3)
    expected = masks(seg(np.ascontiguousarray(displayed), prompts=PROMPTS))
    from pgat_hf.data.converters.readers import read_rgb

    np.testing.assert_array_equal(read_rgb(path), displayed)  # build.py turns it the same way
    for image in (str(path), Image.open(path)):
        np.testing.assert_array_equal(np.asarray(load_image(image)), displayed)
        results = seg(image, prompts=PROMPTS)
        assert all(result["mask"].size == (64, 128) for result in results)
        for got, want in zip(masks(results), expected):
            np.testing.assert_array_equal(got, want)
    assert any(mask.any() for mask in expected)  # the comparison is between masks with nuclei in them


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")  # PIL, reading the broken TIFF below
def test_a_float32_rgb_tiff_pil_cannot_decode_is_read_as_build_py_reads_it(seg, tile, tmp_path):
    import tifffile

    from pgat_hf.data.converters.readers import read_rgb

    rgb = np.asarray(tile)
    path = tmp_path / "float_rgb.tif"
    tifffile.imwrite(path, rgb.astype(np.float32) / 255.0, photometric="rgb")
    with pytest.raises(UnidentifiedImageError):
        Image.open(path)  # so the tifffile fallback is what reads it below
    np.testing.assert_array_equal(np.asarray(load_image(path)), rgb)
    np.testing.assert_array_equal(np.asarray(load_image(path)), read_rgb(path))
    for got, want in zip(masks(seg(str(path), prompts=PROMPTS)), masks(seg(tile, prompts=PROMPTS))):
        np.testing.assert_array_equal(got, want)
    broken = tmp_path / "broken.tif"
    broken.write_bytes(b"II*\x00 not really a tiff")
    with pytest.raises(ValueError, match="cannot read image .*broken.tif"):
        load_image(broken)


# ---------------------------------------------------------------------------------------------
# PIL modes
# ---------------------------------------------------------------------------------------------


def test_modes_with_alpha_or_another_colour_space_become_the_rgb_they_show(tile):
    rgb = np.asarray(tile).astype(int)
    grey = np.asarray(tile.convert("L"))
    half_alpha = Image.merge("LA", (tile.convert("L"), Image.new("L", tile.size, 128)))
    np.testing.assert_array_equal(np.asarray(load_image(half_alpha)), np.dstack([grey] * 3))
    # La stores grey x alpha / 255; divided back, it is the grey image (to rounding)
    premultiplied = half_alpha.convert("La")
    assert np.abs(np.asarray(premultiplied)[..., 0].astype(int) - grey).max() > 100
    assert np.abs(np.asarray(load_image(premultiplied)).astype(int) - grey[..., None]).max() <= 1
    translucent = tile.convert("RGBA")
    translucent.putalpha(128)
    assert np.abs(np.asarray(load_image(translucent.convert("RGBa"))).astype(int) - rgb).max() <= 2
    palette = tile.convert("P")
    np.testing.assert_array_equal(np.asarray(load_image(palette.convert("PA"))), np.asarray(palette.convert("RGB")))
    for mode in ("HSV", "LAB"):  # their bytes read as RGB would be 40-70 levels off on average
        difference = np.abs(np.asarray(load_image(tile.convert(mode))).astype(int) - rgb)
        assert difference.max() <= 6 and difference.mean() < 1, mode
    with pytest.raises(ValueError, match="binary mask"):
        load_image(Image.new("1", (8, 8)))


def test_sixteen_bit_and_float_grey_pil_images_are_converted_as_arrays(tile):
    grey = np.asarray(tile.convert("L"))
    np.testing.assert_array_equal(np.asarray(load_image(Image.fromarray(grey.astype(np.uint16))))[..., 0], grey)
    as_float = Image.fromarray(grey.astype(np.float32) / 255.0)  # mode F, values in 0..1
    assert as_float.mode == "F"
    np.testing.assert_array_equal(np.asarray(load_image(as_float))[..., 0], grey)


# ---------------------------------------------------------------------------------------------
# Call parameters
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, message", [
    ({"prompt_batch_size": 0}, r"prompt_batch_size must be a whole number of prompts, at least 1, got 0"),
    ({"prompt_batch_size": -1}, r"prompt_batch_size must be a whole number of prompts, at least 1, got -1"),
    ({"prompt_batch_size": 2.5}, r"got 2.5 \(a float; pass an int\)"),
    ({"prompt_batch_size": "4"}, r"prompt_batch_size must be .* got '4'"),
    ({"presence_threshold": "high"}, r"presence_threshold must be a finite number, got 'high'"),
    ({"threshold": float("nan")}, r"threshold must be a finite number, got nan"),
    ({"threshold": np.float32("inf")}, r"threshold must be a finite number, got np.float32\(inf\)"),
    ({"threshold": True}, r"threshold must be a finite number, got True"),
    ({"min_instance_area": -1}, r"min_instance_area must be a whole number of pixels, at least 0, got -1"),
    ({"tile_size": 128.0}, r"tile_size must be 0 \(one pass\) or .* got 128.0 \(a float; pass an int\)"),
    ({"tile_size": np.int64(8)}, r"tile_size must be 0 \(one pass\) or a whole number of pixels, at least 16, got 8"),
    ({"tile_size": 64, "tile_overlap": 16.0}, r"tile_overlap must be .* \(a float; pass an int\)"),
])
def test_bad_parameters_raise_clear_errors(seg, tile, kwargs, message):
    with pytest.raises(ValueError, match=message):
        seg(tile, prompts="all nuclei", **kwargs)


def test_numpy_numbers_are_accepted_as_the_python_numbers_they_equal(seg, wide):
    image = Image.fromarray(wide)  # wider than the 64-px training tiles: tiled
    reference = seg(image, prompts=PROMPTS, tile_size=64, tile_overlap=16, prompt_batch_size=1, min_instance_area=5,
                    threshold=0.4, presence_threshold=0.0)
    numpy_kwargs = dict(tile_size=np.int64(64), tile_overlap=np.int32(16), prompt_batch_size=np.int64(1),
                        min_instance_area=np.uint8(5), threshold=np.float32(0.4), presence_threshold=np.float64(0.0))
    for got, want in zip(seg(image, prompts=PROMPTS, **numpy_kwargs), reference):
        np.testing.assert_array_equal(np.asarray(got["mask"]), np.asarray(want["mask"]))
    one_pass = seg(image, prompts=PROMPTS, tile_size=np.int64(0))
    assert any(not np.array_equal(a, b) for a, b in zip(masks(one_pass), masks(reference)))  # tile_size was read


@pytest.mark.parametrize("kwargs, name", [({"thresh": 0.0}, "'thresh'"), ({"tilesize": 0}, "'tilesize'"),
                                          ({"thresh": 0.0, "tilesize": 0}, "'thresh', 'tilesize'")])
def test_unknown_parameters_are_named_not_ignored(seg, tile, kwargs, name):
    with pytest.raises(TypeError, match=f"unknown pipeline parameters? {name}; the parameters are prompts, "
                                        "tile_size, tile_overlap, prompt_batch_size, threshold"):
        seg(tile, prompts="all nuclei", **kwargs)


def test_unknown_parameters_at_construction_and_the_base_pipelines_own_are_told_apart(trained_checkpoint, tile):
    folder = str(trained_checkpoint[0])
    with pytest.raises(TypeError, match="unknown pipeline parameter 'thresh'"):
        pipeline("text-guided-nuclei-segmentation", model=folder, thresh=0.5)
    # the base Pipeline's own keywords are its, not typos
    seg = pipeline("text-guided-nuclei-segmentation", model=folder, device=-1, batch_size=1, num_workers=0,
                   threshold=1.0)
    assert not np.asarray(seg(tile, prompts="all nuclei", batch_size=1, num_workers=0)["mask"]).any()


def test_batch_size_above_one_is_refused_with_the_reason(seg, trained_checkpoint, tile):
    with pytest.raises(ValueError, match="batch_size must be 1, got 2: all prompts of an image already share one "
                                         "vision pass"):
        seg([tile, tile], prompts=PROMPTS, batch_size=2)
    with pytest.raises(ValueError, match="batch_size must be 1, got 4"):
        pipeline("text-guided-nuclei-segmentation", model=str(trained_checkpoint[0]), batch_size=4)
