"""Seeded generator of H&E-like tiles with instance and class maps (the offline demo dataset).

Colour is made the way a stained slide makes it: two stain *concentration* fields, hematoxylin
(nuclei) and eosin (cytoplasm, stroma), mixed by Beer-Lambert absorption
``rgb = 255 * exp(-(H * h_vec + E * e_vec))``. That gives pink stroma and purple/blue nuclei
without hand-picking RGB values, and per-tile stain jitter mimics lab-to-lab colour variation.

The four categories differ the way real ones do (PanNuke-like naming):

1. neoplastic: large, irregular outline, hyperchromatic coarse chromatin, often a nucleolus, in
   a sheet;
2. inflammatory: small, round, very dark, in loose clusters;
3. connective: thin elongated spindles aligned (loosely) with the stromal fibres;
4. epithelial: medium ovals, pale vesicular chromatin with a dark rim, in rows or gland rings
   around a white lumen.

Nuclei never overlap (a one-pixel gap is kept), instance ids are 1..N in placement order.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
from scipy import ndimage

from pgat_hf.data.dataset import encode_class_map, encode_image, encode_instance_map, has_config, write_dataset_repo
from pgat_hf.data.prompts import make_prompt_groups
from pgat_hf.data.vocabulary import default_vocabulary

SYNTHETIC_CATEGORIES = ["neoplastic", "inflammatory", "connective", "epithelial"]
NEOPLASTIC, INFLAMMATORY, CONNECTIVE, EPITHELIAL = 1, 2, 3, 4

# Reference stain vectors (optical density per unit concentration, RGB order), Macenko-style.
_H_VEC = np.array([0.60, 0.76, 0.36])
_E_VEC = np.array([0.16, 0.86, 0.48])
_PRESENT_PROB = 0.7
_SPLIT_CODES = {"train": 0, "test": 1, "validation": 2}


class _Canvas:
    """Per-tile accumulators, all (S, S): label maps and stain-concentration fields."""

    def __init__(self, size: int, rng: np.random.Generator):
        self.size = size
        self.instance = np.zeros((size, size), np.int32)
        self.classes = np.zeros((size, size), np.int32)
        self.occupied = np.zeros((size, size), bool)  # nuclei grown by the 1 px gap
        self.hema = np.zeros((size, size), np.float32)  # nuclear hematoxylin
        self.eosin = np.zeros((size, size), np.float32)  # nuclear / nucleolar eosin
        self.cyto = np.zeros((size, size), np.float32)  # cytoplasm around epithelial/tumour cells
        self.lumen = np.zeros((size, size), np.float32)  # 1 where gland lumen clears the stroma
        self.next_id = 1
        # Unit-variance chromatin textures shared by all nuclei in the tile.
        self.fine = _unit(ndimage.gaussian_filter(rng.standard_normal((size, size)), 0.7))
        self.coarse = _unit(ndimage.gaussian_filter(rng.standard_normal((size, size)), 1.4))


def _unit(field: np.ndarray) -> np.ndarray:
    return ((field - field.mean()) / (field.std() + 1e-8)).astype(np.float32)


def _star_shape(cy, cx, ry, rx, theta, wobble, size, margin=0.0):
    """Rasterise a rotated, boundary-perturbed ellipse.

    Returns (rows, cols, rho, phi): pixel coordinates inside the shape (clipped to the tile), the
    normalised radius rho in [0, 1] (0 centre, 1 boundary) and the local angle phi. ``wobble`` is a
    list of (k, amplitude, phase): the radius is scaled by 1 + sum a*cos(k*phi + p), which makes
    irregular outlines. ``margin`` grows both semi-axes by that many pixels (for the gap check).
    """
    reach = max(ry, rx) * (1.0 + sum(abs(a) for _, a, _ in wobble)) + margin + 1.0
    r0, r1 = max(int(cy - reach), 0), min(int(cy + reach) + 2, size)
    c0, c1 = max(int(cx - reach), 0), min(int(cx + reach) + 2, size)
    if r0 >= r1 or c0 >= c1:
        return None
    rows, cols = np.mgrid[r0:r1, c0:c1]
    dy, dx = rows - cy, cols - cx
    cos_t, sin_t = math.cos(theta), math.sin(theta)
    u = dx * cos_t + dy * sin_t  # along the major (x) axis
    v = -dx * sin_t + dy * cos_t
    phi = np.arctan2(v / ry, u / rx)
    scale = np.ones_like(phi)
    for k, amp, phase in wobble:
        scale += amp * np.cos(k * phi + phase)
    rho = np.sqrt((u / (rx + margin)) ** 2 + (v / (ry + margin)) ** 2) / scale
    inside = rho <= 1.0
    return rows[inside], cols[inside], rho[inside], phi[inside]


def _place(canvas: _Canvas, rng, category, cy, cx, ry, rx, theta, wobble) -> bool:
    """Draw one nucleus if it does not touch an existing one; returns whether it was placed."""
    grown = _star_shape(cy, cx, ry, rx, theta, wobble, canvas.size, margin=1.2)
    if grown is None or canvas.occupied[grown[0], grown[1]].any():
        return False
    shape = _star_shape(cy, cx, ry, rx, theta, wobble, canvas.size)
    if shape is None or len(shape[0]) < 4:  # mostly off-tile: skip
        return False
    rows, cols, rho, _ = shape
    canvas.occupied[grown[0], grown[1]] = True
    canvas.instance[rows, cols] = canvas.next_id
    canvas.classes[rows, cols] = category
    canvas.next_id += 1

    fine, coarse = canvas.fine[rows, cols], canvas.coarse[rows, cols]
    if category == INFLAMMATORY:  # dense, nearly uniform chromatin
        hema = 2.1 + 0.12 * fine
        eosin = 0.05
    elif category == NEOPLASTIC:  # hyperchromatic, clumped chromatin, thick membrane
        hema = 1.45 + 0.35 * coarse + 0.25 * (rho > 0.8)
        eosin = 0.1
    elif category == CONNECTIVE:  # dark thin spindle
        hema = 1.75 + 0.12 * fine
        eosin = 0.08
    else:  # EPITHELIAL: pale vesicular nucleus, dark rim, fine chromatin specks
        hema = 0.7 + 0.12 * fine + 0.65 * (rho > 0.72) + 0.4 * (fine > 1.3)
        eosin = 0.05
    canvas.hema[rows, cols] = np.maximum(hema, 0.3)
    canvas.eosin[rows, cols] = eosin

    nucleolus_prob = {NEOPLASTIC: 0.65, EPITHELIAL: 0.3}.get(category, 0.0)
    if rng.random() < nucleolus_prob:
        # A small eosinophilic-dark dot off centre: the classic malignant / active-nucleus cue.
        offset, angle = rng.uniform(0, 0.4) * min(ry, rx), rng.uniform(0, 2 * math.pi)
        radius = rng.uniform(0.9, 1.5)
        dot = _star_shape(cy + offset * math.sin(angle), cx + offset * math.cos(angle),
                          radius, radius, 0.0, [], canvas.size)
        if dot is not None:
            keep = canvas.instance[dot[0], dot[1]] == canvas.next_id - 1
            canvas.hema[dot[0][keep], dot[1][keep]] += 0.6
            canvas.eosin[dot[0][keep], dot[1][keep]] += 0.7

    if category in (NEOPLASTIC, EPITHELIAL):  # a cell body of cytoplasm around the nucleus
        body = _star_shape(cy, cx, ry * 1.9, rx * 1.7, theta, wobble, canvas.size)
        if body is not None:
            canvas.cyto[body[0], body[1]] = 1.0
    return True


def _wobble(rng, amplitude: float, orders=(2, 3, 4)):
    return [(k, rng.uniform(0.3, 1.0) * amplitude / k ** 0.5, rng.uniform(0, 2 * math.pi)) for k in orders]


def _add_epithelial(canvas: _Canvas, rng, target: int) -> None:
    """Rows and gland rings of oval nuclei, long axis perpendicular to the row (polarity)."""
    size, placed = canvas.size, 0
    for _ in range(3):  # up to three structures, stop once the target is met
        if placed >= target:
            break
        ry_mean, rx_mean = rng.uniform(3.2, 4.0), rng.uniform(4.6, 5.8)
        step = 2 * ry_mean + 2.2  # neighbours sit side by side along the row
        ring = rng.random() < 0.5
        if ring:  # gland: ring of nuclei around a white lumen, completed even past the target
            radius = rng.uniform(14, 22)
            cy, cx = rng.uniform(0.25, 0.75, size=2) * size
            n = int(2 * math.pi * radius / step)
            start = rng.uniform(0, 2 * math.pi)
            points = [(cy + radius * math.sin(a), cx + radius * math.cos(a), a)
                      for a in start + np.arange(n) * 2 * math.pi / n]
        else:  # straight-ish row (surface epithelium / gland cut tangentially)
            angle = rng.uniform(0, math.pi)
            cy, cx = rng.uniform(0.2, 0.8, size=2) * size
            offsets = (np.arange(-size, size, step) + rng.uniform(0, step))
            bend = rng.uniform(-0.004, 0.004)  # slight curvature
            normal = angle + math.pi / 2
            points = [(cy + t * math.sin(angle) + bend * t * t * math.sin(normal),
                       cx + t * math.cos(angle) + bend * t * t * math.cos(normal), normal)
                      for t in offsets]
        in_structure = 0
        for py, px, orient in points:
            if placed >= target and not ring:
                break
            jitter = rng.normal(0, 0.7, size=2)
            ok = _place(canvas, rng, EPITHELIAL, py + jitter[0], px + jitter[1],
                        ry_mean * rng.uniform(0.9, 1.1), rx_mean * rng.uniform(0.9, 1.1),
                        orient + rng.normal(0, 0.15), _wobble(rng, 0.04))
            placed += ok
            in_structure += ok
        if ring and in_structure >= 5:  # only a real gland gets a lumen
            yy, xx = np.ogrid[:size, :size]
            inner = radius - rx_mean - 3.0
            lumen = (yy - cy) ** 2 + (xx - cx) ** 2 < inner ** 2
            canvas.lumen[lumen] = 1.0
            canvas.occupied |= lumen  # keep later nuclei out of the empty lumen


def _add_scattered(canvas: _Canvas, rng, category: int, target: int, fibre_angle: float) -> None:
    """Neoplastic sheets, inflammatory clusters or connective spindles along the fibres."""
    size, placed = canvas.size, 0
    centres = rng.uniform(0.15, 0.85, size=(1 + int(rng.integers(0, 2)), 2)) * size
    for _ in range(6 * target):
        if placed >= target:
            break
        if category == CONNECTIVE or rng.random() < 0.25:
            cy, cx = rng.uniform(0, size, size=2)
        else:
            spread = 0.16 * size if category == NEOPLASTIC else 0.09 * size
            cy, cx = centres[rng.integers(len(centres))] + rng.normal(0, spread, size=2)
        if category == NEOPLASTIC:
            r = rng.uniform(5.5, 8.5)
            ok = _place(canvas, rng, category, cy, cx, r * rng.uniform(0.72, 0.95), r,
                        rng.uniform(0, math.pi), _wobble(rng, 0.16, (2, 3, 4, 5)))
        elif category == INFLAMMATORY:
            r = rng.uniform(2.3, 3.2)
            ok = _place(canvas, rng, category, cy, cx, r * rng.uniform(0.85, 1.0), r,
                        rng.uniform(0, math.pi), _wobble(rng, 0.04))
        else:  # CONNECTIVE
            ok = _place(canvas, rng, category, cy, cx, rng.uniform(1.3, 2.0), rng.uniform(6.5, 10.5),
                        fibre_angle + rng.normal(0, 0.35), _wobble(rng, 0.03))
        placed += ok


def _smooth_noise(rng, size: int, cells: int) -> np.ndarray:
    """Unit-variance low-frequency noise (S, S) with about ``cells`` bumps per side.

    A coarse grid spread by a Gaussian interpolation matrix: ~100x cheaper than a wide
    gaussian_filter on the full tile, and just as smooth.
    """
    grid = rng.standard_normal((cells + 2, cells + 2))
    pos = (np.arange(size) + 0.5) / size * cells + 0.5  # pixel centre in grid units
    weights = np.exp(-0.5 * ((pos[:, None] - np.arange(cells + 2)[None, :]) / 0.7) ** 2)
    weights /= weights.sum(1, keepdims=True)
    return _unit(weights @ grid @ weights.T)


def _stroma(rng, size: int, fibre_angle: float) -> np.ndarray:
    """Eosin concentration of the background (S, S): smooth variation plus wavy fibres."""
    low = _smooth_noise(rng, size, 5)
    pad = int(0.22 * size) + 2  # rotating a larger field keeps the corners filled
    big = size + 2 * pad
    streaks = ndimage.gaussian_filter(rng.standard_normal((big, big)), (0.8, 5.0))
    # Bend the straight streaks with a smooth displacement field: collagen bundles are wavy.
    rows, cols = np.mgrid[:big, :big].astype(np.float32)
    rows += 4.0 * _smooth_noise(rng, big, 4)
    cols += 4.0 * _smooth_noise(rng, big, 4)
    streaks = ndimage.map_coordinates(streaks, [rows, cols], order=1, mode="reflect")
    streaks = ndimage.rotate(streaks, -math.degrees(fibre_angle), reshape=False, order=1)  # rows point down
    streaks = _unit(streaks[pad:pad + size, pad:pad + size])
    eosin = 0.40 + 0.08 * low + 0.09 * np.clip(streaks, -1.5, 2.0)
    # Pale clefts between collagen bundles, only where the smooth field is low (loose stroma).
    eosin *= 1.0 - 0.45 * np.clip(-streaks - 1.2, 0.0, 1.0) * np.clip(0.5 - low, 0.0, 1.0)
    return np.clip(eosin, 0.03, None).astype(np.float32)


def generate_tile(rng: np.random.Generator, image_size: int = 128):
    """One synthetic H&E tile.

    Returns:
        rgb: uint8 (S, S, 3); instance_map: int32 (S, S), 0 background, ids 1..N;
        class_map: int32 (S, S), 0 background, 1..4 = SYNTHETIC_CATEGORIES;
        present: list[bool] of length 4, whether each category has at least one nucleus.
    Nuclei sizes are in pixels at a fixed "magnification": a bigger tile shows a larger field.
    """
    size = int(image_size)
    while True:  # retry in the (rare) case that no nucleus could be placed at all
        wanted = rng.random(len(SYNTHETIC_CATEGORIES)) < _PRESENT_PROB
        if not wanted.any():
            wanted[rng.integers(len(SYNTHETIC_CATEGORIES))] = True
        fibre_angle = rng.uniform(0, math.pi)
        canvas = _Canvas(size, rng)
        area = (size / 128.0) ** 2
        counts = {
            EPITHELIAL: max(1, round(rng.integers(8, 15) * area)),
            NEOPLASTIC: max(1, round(rng.integers(5, 10) * area)),
            CONNECTIVE: max(1, round(rng.integers(4, 9) * area)),
            INFLAMMATORY: max(1, round(rng.integers(8, 20) * area)),
        }
        # Structured and large nuclei first, small inflammatory cells fill the gaps.
        for category in (EPITHELIAL, NEOPLASTIC, CONNECTIVE, INFLAMMATORY):
            if not wanted[category - 1]:
                continue
            if category == EPITHELIAL:
                _add_epithelial(canvas, rng, counts[category])
            else:
                _add_scattered(canvas, rng, category, counts[category], fibre_angle)
        present = [bool((canvas.classes == c).any()) for c in range(1, len(SYNTHETIC_CATEGORIES) + 1)]
        if any(present):
            break

    rgb = _compose(canvas, rng, fibre_angle)
    return rgb, canvas.instance, canvas.classes, present


def _compose(canvas: _Canvas, rng, fibre_angle: float) -> np.ndarray:
    """Stain fields → uint8 RGB (S, S, 3) by Beer-Lambert mixing."""
    size = canvas.size
    eosin = _stroma(rng, size, fibre_angle)
    eosin *= 1.0 - 0.93 * ndimage.gaussian_filter(canvas.lumen, 1.0)  # white gland lumen
    cyto = ndimage.gaussian_filter(canvas.cyto, 1.2)
    nucleus = canvas.instance > 0
    # Cytoplasm is denser and slightly amphophilic (purple-pink); nuclei replace the stroma.
    eosin = np.where(nucleus, canvas.eosin, eosin + 0.3 * cyto)
    hema = ndimage.gaussian_filter(canvas.hema, 0.5) + 0.05 + 0.18 * cyto
    # Per-tile stain jitter: vectors and strength vary between slides and labs.
    h_vec = _H_VEC * rng.uniform(0.9, 1.1, 3)
    e_vec = _E_VEC * rng.uniform(0.9, 1.1, 3)
    strength = rng.uniform(0.85, 1.15)
    density = strength * (hema[..., None] * h_vec + eosin[..., None] * e_vec)
    rgb = 255.0 * np.exp(-density) + rng.normal(0, 2.5, size=(size, size, 3))
    return np.clip(rgb, 0, 255).round().astype(np.uint8)


def _row_rngs(seed: int, split: str, index: int):
    """(tile Generator, prompt seed) for one row, derived without Python's salted hash()."""
    # Unknown split names get a stable code from their bytes (never hash(), which is salted).
    code = _SPLIT_CODES.get(split, int.from_bytes(split.encode()[:8].ljust(8, b"\0"), "little") + 3)
    seq = np.random.SeedSequence([int(seed), code, int(index)])
    tile_seq, prompt_seq = seq.spawn(2)
    return np.random.default_rng(tile_seq), int(prompt_seq.generate_state(1)[0])


def make_synthetic_row(seed: int, split: str, index: int, image_size: int = 128, vocabulary=None) -> dict:
    """One dataset row (FEATURES schema) of the synthetic config."""
    rng, prompt_seed = _row_rngs(seed, split, index)
    rgb, instances, classes, present = generate_tile(rng, image_size)
    return {
        "image": encode_image(rgb),
        "instance_map": encode_instance_map(instances),
        "class_map": encode_class_map(classes),
        "prompt_groups": make_prompt_groups(SYNTHETIC_CATEGORIES, present, seed=prompt_seed, vocabulary=vocabulary),
        "image_id": f"synthetic-{split}-{index:05d}",
        "source": "synthetic",
        "tissue": "synthetic",
    }


def preview_grid(num_tiles: int = 8, image_size: int = 128, seed: int = 0, columns: int = 4) -> np.ndarray:
    """Training tiles above their class maps (red neoplastic, green inflammatory, blue
    connective, yellow epithelial), as one uint8 (rows*2*S, columns*S, 3) image for eyeballing."""
    palette = np.array([[0, 0, 0], [230, 30, 30], [30, 200, 30], [30, 120, 255], [255, 200, 0]], np.uint8)
    tiles, maps = [], []
    for index in range(num_tiles):
        rgb, _, classes, _ = generate_tile(_row_rngs(seed, "train", index)[0], image_size)
        tiles.append(rgb)
        maps.append(palette[np.clip(classes, 0, len(palette) - 1)])
    blank = np.zeros_like(tiles[0])
    tiles += [blank] * (-num_tiles % columns)
    maps += [blank] * (-num_tiles % columns)
    bands = []
    for start in range(0, len(tiles), columns):
        bands.append(np.concatenate(tiles[start:start + columns], 1))
        bands.append(np.concatenate(maps[start:start + columns], 1))
    return np.concatenate(bands, 0)


_CARD = """# Synthetic H&E-like nuclei (pgat_hf)

Procedurally generated tiles for offline demos and tests: pink eosin stroma with fibres and
four nucleus categories (class ids 1..4 = neoplastic, inflammatory, connective, epithelial).
Each row holds an RGB tile, a 16-bit instance map, an 8-bit class map and prompt groups
(T1 all nuclei, T2 one per category; low/medium/high prompts plus held-out framings and, for T2,
held-out synonyms). The vocabulary the prompts come from is saved as `prompts.yaml` beside the data.
Rebuilt byte-identically by `python dataset_scripts/synthetic.py --out DIR` with the same args.
"""


SETTINGS_FILE = "synthetic.json"
PROMPTS_FILE = "prompts.yaml"


def synthetic_settings(num_train=400, num_test=64, num_validation=0, image_size=128, seed=0, vocabulary=None) -> dict:
    """What a synthetic config is built from; a folder whose settings differ is rebuilt."""
    vocabulary = vocabulary or default_vocabulary()
    return {"num_train": int(num_train), "num_test": int(num_test), "num_validation": int(num_validation),
            "image_size": int(image_size), "seed": int(seed), "prompts_sha256": vocabulary.sha256}


# The demo recipe's validation tiles: build.py and dataset_scripts/synthetic.py build them too, so the
# demo trains on such a folder as built.
DEMO_VALIDATION_TILES = 32


def generate_synthetic_dataset(
    out_dir: str | os.PathLike,
    num_train: int = 400,
    num_test: int = 64,
    image_size: int = 128,
    seed: int = 0,
    config_name: str = "synthetic",
    num_validation: int = 0,
    vocabulary=None,
) -> str:
    """Build the synthetic config (splits train, test, validation; a split of 0 tiles is left out); returns the path.

    Every row depends only on (seed, split, index, image_size, vocabulary), so the same arguments
    give byte-identical parquet files. The settings (synthetic.json) and the vocabulary file
    (prompts.yaml) are written beside the parquet files.
    """
    from tqdm.auto import tqdm

    vocabulary = vocabulary or default_vocabulary()
    counts = [(split, n) for split, n in (("train", num_train), ("test", num_test), ("validation", num_validation)) if n]
    if not counts:
        raise ValueError(f"{out_dir}: a synthetic dataset needs at least one tile in train, test or validation")
    splits: dict[str, list[dict]] = {}
    with tqdm(total=sum(n for _, n in counts), desc=f"synthetic tiles ({config_name})") as bar:
        for split, count in counts:
            splits[split] = []
            for index in range(count):
                splits[split].append(make_synthetic_row(seed, split, index, image_size, vocabulary))
                bar.update(1)
    settings = synthetic_settings(num_train, num_test, num_validation, image_size, seed, vocabulary)
    extra = {SETTINGS_FILE: json.dumps(settings, indent=2) + "\n", PROMPTS_FILE: vocabulary.text}
    return write_dataset_repo(out_dir, config_name, splits, SYNTHETIC_CATEGORIES, card_text=_CARD, extra_files=extra)


def ensure_synthetic_dataset(out_dir: str | os.PathLike, config_name: str = "synthetic", **kwargs) -> str:
    """Build the synthetic config unless ``out_dir`` holds one built with the same settings.

    A folder built with other settings (tile counts, size, seed, vocabulary) is rebuilt, and the
    reason printed, so a recipe never trains on rows it did not ask for.
    """
    wanted = synthetic_settings(**kwargs)
    settings_path = Path(out_dir) / config_name / SETTINGS_FILE
    if has_config(out_dir, config_name):
        found = json.loads(settings_path.read_text()) if settings_path.is_file() else None
        if found == wanted:
            return str(Path(out_dir))
        changed = sorted(k for k in wanted if (found or {}).get(k) != wanted[k])
        print(f"rebuilding {Path(out_dir) / config_name}: its settings differ from the recipe's ({', '.join(changed)})",
              flush=True)
    return generate_synthetic_dataset(out_dir, config_name=config_name, **kwargs)
