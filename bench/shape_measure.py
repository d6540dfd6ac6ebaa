"""A first trial of a texture measure that sees shapes (issue 30): blob sizes and outlines at several grey levels.

`quality.score` compares colours, patches and the power spectrum; none of them sees whether the grain of a texture
is organised into whole objects (stones cut into pebble-coloured speckle scores about as well as stones). This
bench tries a measure built on connected blobs: threshold the luminance at a few quantiles of the target's own
luminance, label the blobs of the minority phase at each level (dark blobs below the median, bright ones above),
and compare the distribution of blob area (log2) and compactness (4 pi area / perimeter^2) with the target's, by a
1-D Wasserstein distance weighted by area (so each pixel votes for the blob it lies in, and one-pixel noise weighs
little). As in `quality.score`, the distance is divided by the same distance between the target's two halves, so
1.0 means "as close as the target to itself"; the generated image is cut into halves too, so both sides of the
comparison see the same 128 x 64 frame and the same cut blobs at its border.

It then builds pairs (target, A, B) from the bundled models' growths and simple transforms (tiles shuffled, zoomed,
shrunk, blurred, rotated, another model's growth), writes contact sheets to judge by eye, and reports how often the
new measure and `quality.score(...).combined` agree with the eye's verdicts recorded in EYE below.

The second trial adds hard pairs built to fool the current score (phase-randomised growths and targets: same
colours and power spectrum, no objects; seamless Voronoi shuffles of the growth on its torus) and two more
candidates: `edge_score` (the blob statistics of regions enclosed by strong gradients) and `phase_score`
(Portilla-Simoncelli-like magnitude and cross-scale phase statistics of complex log-Gabor bands).

    python bench/shape_measure.py --cache /tmp/shapes_cache --sheets /tmp/shapes_cache/sheets
    python bench/shape_measure.py --sheets /tmp/shapes2_sheets --sheets-only --docs-hard docs/research
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFilter

from nca_gradio import quality
from nca_gradio.images import load_target
from nca_gradio.shapes import (
    FLOOR_EPS,
    BlobStats,
    blob_stats,
    halves,
    luminance,
    shape_ratio_of_arrays,
    stats_distance,
)

ROOT = Path(__file__).resolve().parent.parent
SIZE = 128
LEVELS = (0.2, 0.35, 0.5, 0.5, 0.65, 0.8)  # quantiles of the target's luminance; below 0.5 dark blobs, else bright
DARK = (True, True, True, False, False, False)  # the minority phase at each level: the majority one percolates


# ---------------------------------------------------------------- the measure (first trial: grey-level blobs)


def unit(img: np.ndarray) -> np.ndarray:
    """An H x W x 3 uint8 image as floats in [0, 1], as the library's measure takes it."""
    return img[..., :3].astype(np.float64) / 255.0


def level_stats(images: list[np.ndarray], thresholds: np.ndarray) -> BlobStats:
    """Blob statistics of one or more luminance images (pooled): dark blobs below or bright ones above each level."""
    return blob_stats([[grey < t if dark else grey > t for grey in images] for t, dark in zip(thresholds, DARK)])


@dataclass(frozen=True)
class ShapeScore:
    """Ratios against the target's own floor, as quality.Score: 1.0 is as close as the target to itself."""

    combined: float
    area: float
    compactness: float


def shape_score(generated: np.ndarray, target: np.ndarray, own_levels: bool = False) -> ShapeScore:
    """Score a generated texture (HxWx3 uint8) against its target, by the blob statistics of both.

    By default both images are cut at the target's luminance quantiles (as issue 30's sketch), so a texture
    darker than the target has more dark blobs; with `own_levels` each image is cut at its own quantiles, so
    the measure sees only layout and leaves tone to quality.score's colour term.
    """
    target_grey, gen_grey = luminance(unit(target)), luminance(unit(generated))
    thresholds = np.quantile(target_grey, LEVELS)
    left, right = (level_stats([h], thresholds) for h in halves(target_grey))
    gen = level_stats(list(halves(gen_grey)), np.quantile(gen_grey, LEVELS) if own_levels else thresholds)
    floor = stats_distance(left, right)
    to_left, to_right = stats_distance(gen, left), stats_distance(gen, right)
    ratios = [(to_left[k] + to_right[k]) / 2 / max(floor[k], FLOOR_EPS) for k in range(2)]
    return ShapeScore(sum(ratios) / 2, ratios[0], ratios[1])


# ---------------------------------------------------------------- second trial: regions inside edges (shipped), phases


def edge_score(generated: np.ndarray, target: np.ndarray) -> float:
    """The shipped measure, `nca_gradio.shapes.shape_ratio`, on two uint8 images."""
    return shape_ratio_of_arrays(unit(generated), unit(target))


SCALES = 4  # octave-spaced bands, centre frequencies 1/4, 1/8, 1/16, 1/32 cycles per pixel
ORIENTATIONS = 4


def complex_bands(grey: np.ndarray) -> list[list[np.ndarray]]:
    """Complex (analytic) log-Gabor responses [scale][orientation] of a luminance image, by FFT.

    Each filter keeps one half of the frequency plane around its orientation, so its response is complex: its
    magnitude is the local energy of that band (an edge, a line, a blob's rim) and its phase says which (an edge
    is a phase of +-90 degrees, a dark or bright line 180 or 0).
    """
    h, w = grey.shape
    fy, fx = np.meshgrid(np.fft.fftfreq(h), np.fft.fftfreq(w), indexing="ij")
    radius, angle = np.hypot(fy, fx), np.arctan2(fy, fx)
    radius[0, 0] = 1.0
    spectrum = np.fft.fft2(grey - grey.mean())
    out = []
    for s in range(SCALES):
        centre = 0.25 / 2 ** s
        radial = np.exp(-np.log(radius / centre) ** 2 / (2 * np.log(0.6) ** 2))
        radial[0, 0] = 0.0
        row = []
        for o in range(ORIENTATIONS):
            delta = np.angle(np.exp(1j * (angle - o * math.pi / ORIENTATIONS)))
            row.append(np.fft.ifft2(spectrum * radial * np.exp(-delta ** 2 / (2 * (math.pi / 6) ** 2))))
        out.append(row)
    return out


def _corr(u: np.ndarray, v: np.ndarray) -> float:
    u, v = u - u.mean(), v - v.mean()
    return float((u * v).sum() / max(math.sqrt((u * u).sum() * (v * v).sum()), FLOOR_EPS))


def phase_features(grey: np.ndarray) -> np.ndarray:
    """Statistics that a phase-randomised copy (same power spectrum, same histogram) loses.

    Per band: the sparsity of its magnitude (std / mean; 0.52 for Gaussian noise, more where energy gathers on
    outlines) and the correlation of its magnitude with itself half a wavelength away (how long an outline runs).
    Per pair of adjacent scales and orientation: the correlation of their magnitudes (an outline is an edge at
    every scale) and Portilla and Simoncelli's cross-scale phase statistic, the normalised mean of the fine
    response times the conjugate of the coarse one with its phase doubled (real and imaginary parts: edges and
    lines); noise has 0. Per scale and pair of adjacent orientations: the correlation of their magnitudes (corners
    and blobs have energy in every direction at once, a grain of streaks in one).
    """
    bands = complex_bands(grey)
    feats = []
    for s in range(SCALES):
        shift = 2 ** (s + 1)
        for o in range(ORIENTATIONS):
            mag = np.abs(bands[s][o])
            feats.append(mag.std() / max(mag.mean(), FLOOR_EPS))
            feats.append((_corr(mag, np.roll(mag, shift, 0)) + _corr(mag, np.roll(mag, shift, 1))) / 2)
            feats.append(_corr(mag, np.abs(bands[s][(o + 1) % ORIENTATIONS])))
            if s + 1 < SCALES:
                fine, coarse = bands[s][o], bands[s + 1][o]
                doubled = coarse ** 2 / np.maximum(np.abs(coarse), FLOOR_EPS)
                c = (fine * np.conj(doubled)).mean() / max(
                    math.sqrt((np.abs(fine) ** 2).mean() * (np.abs(doubled) ** 2).mean()), FLOOR_EPS)
                feats += [c.real, c.imag, _corr(mag, np.abs(coarse))]
    return np.array(feats)


def phase_score(generated: np.ndarray, target: np.ndarray) -> float:
    """Euclidean distance of phase_features to the target's halves, over the halves' own distance (1.0 = floor).

    The generated image's features are the mean of its two halves' (the same 128 x 64 frame as the target's).
    """
    left, right = (phase_features(h) for h in halves(luminance(unit(target))))
    gen = np.mean([phase_features(h) for h in halves(luminance(unit(generated)))], axis=0)
    floor = max(float(np.linalg.norm(left - right)), FLOOR_EPS)
    return (float(np.linalg.norm(gen - left)) + float(np.linalg.norm(gen - right))) / 2 / floor


def current_score(generated: np.ndarray, target: torch.Tensor) -> float:
    """quality.score(...).combined of a uint8 HxWx3 image against a (1, 3, H, W) target."""
    tensor = torch.from_numpy(generated[..., :3].copy()).permute(2, 0, 1).unsqueeze(0).float() / 255.0
    return quality.score(tensor, target).combined


# ---------------------------------------------------------------- the pairs


def shuffled(img: np.ndarray, tile: int = 16, seed: int = 0) -> np.ndarray:
    """Cut into tiles and shuffle them: keeps colours and grain, breaks objects larger than a tile."""
    n = img.shape[0] // tile
    tiles = [img[r * tile:(r + 1) * tile, c * tile:(c + 1) * tile] for r in range(n) for c in range(n)]
    order = np.random.default_rng(seed).permutation(len(tiles))
    rows = [np.concatenate([tiles[order[r * n + c]] for c in range(n)], axis=1) for r in range(n)]
    return np.concatenate(rows, axis=0)


def zoomed(img: np.ndarray) -> np.ndarray:
    """The centre half upscaled 2x: objects twice as big."""
    q = img.shape[0] // 4
    return np.asarray(Image.fromarray(img[q:3 * q, q:3 * q]).resize(img.shape[:2][::-1], Image.BICUBIC))


def shrunk(img: np.ndarray) -> np.ndarray:
    """Downscaled 2x and tiled 2 x 2 (the growth is a torus, so the tiling has no seam): objects half as big."""
    half = np.asarray(Image.fromarray(img).resize((img.shape[1] // 2, img.shape[0] // 2), Image.LANCZOS))
    return np.tile(half, (2, 2, 1))


def blurred(img: np.ndarray, sigma: float = 2.0) -> np.ndarray:
    """Gaussian blur: the same layout with soft outlines."""
    return np.asarray(Image.fromarray(img).filter(ImageFilter.GaussianBlur(sigma)))


def phase_randomised(img: np.ndarray, seed: int = 0) -> np.ndarray:
    """Same Fourier amplitude per channel, random phases, then each channel's histogram matched back: stones -> speckle.

    One random phase field (the FFT phase of white noise, so it is Hermitian) is added to every channel's own phases,
    which keeps the channels' cross-spectra (colour correlations at each frequency); rank matching then restores each
    channel's histogram exactly. What is left of the original is its colours and its power spectrum; what is lost is
    the alignment of phases across frequencies, that is, edges, outlines and whole objects.
    """
    rng = np.random.default_rng(seed)
    noise_phase = np.angle(np.fft.fft2(rng.standard_normal(img.shape[:2])))
    out = np.empty(img.shape[:2] + (3,), np.uint8)
    for c in range(3):
        chan = img[..., c].astype(np.float64)
        spectrum = np.fft.fft2(chan - chan.mean())
        field = np.real(np.fft.ifft2(np.abs(spectrum) * np.exp(1j * (np.angle(spectrum) + noise_phase))))
        ranks = np.argsort(np.argsort(field.ravel()))
        out[..., c] = np.sort(img[..., c].ravel())[ranks].reshape(img.shape[:2])
    return out


def voronoi_shuffled(img: np.ndarray, cells: int = 16, seed: int = 0, soft: float = 1.5) -> np.ndarray:
    """Cells of a random Voronoi tiling (on the torus), each filled from the image rolled by its own random shift.

    The growth is a torus, so a roll has no seam of its own; the cut lines are irregular (no straight tile edges for a
    patch or spectrum statistic to catch) and softened by blending the cells within about `soft` px of a border.
    Objects crossing a cut line are cut and glued to pieces of other objects: whole objects against objects cut up.
    """
    rng = np.random.default_rng(seed)
    h, w = img.shape[:2]
    seeds = rng.uniform(0, [h, w], size=(cells, 2))
    shifts = rng.integers(0, [h, w], size=(cells, 2))
    yy, xx = np.mgrid[0:h, 0:w]
    dist = np.empty((cells, h, w))
    for k, (sy, sx) in enumerate(seeds):
        dy, dx = np.abs(yy - sy), np.abs(xx - sx)
        dist[k] = np.hypot(np.minimum(dy, h - dy), np.minimum(dx, w - dx))
    weight = np.exp(-(dist - dist.min(axis=0)) / soft)
    weight[weight < 1e-3] = 0.0
    weight /= weight.sum(axis=0)
    out = sum(weight[k][..., None] * np.roll(img, tuple(shifts[k]), axis=(0, 1)).astype(np.float64) for k in range(cells))
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def grown(name: str, cache: Path, folder: Path | None = None) -> np.ndarray:
    """A model's 128 px growth after 1,024 steps (float32), grown once and cached as a PNG (default: the bundled NAME)."""
    path = cache / f"{name}.png"
    if not path.exists():
        from nca_gradio.model_folder import load_folder
        from nca_gradio.render import grow

        image = grow(load_folder(folder or ROOT / "models" / name), size=SIZE, steps=1024, every=1024, precision="float32",
                     keep_frames=False).final
        Image.fromarray(image).save(path)
    return np.asarray(Image.open(path).convert("RGB"))


def target_image(name: str) -> np.ndarray:
    return np.asarray(Image.open(ROOT / "models" / name / "target.png").convert("RGB").resize((SIZE, SIZE)))


@dataclass(frozen=True)
class Pair:
    name: str
    target: str  # a bundled model's name: its target.png is the target
    a: np.ndarray
    b: np.ndarray
    a_desc: str
    b_desc: str
    hard: bool = False  # one of the second trial's pairs, built to fool the current score


JUDGED_MODELS = ("autumn_leaves", "brick_gray", "coffee_beans", "grass_gray", "gravel_gray", "hubble_dots", "pebbles",
                 "starry_sky")  # the bundled models when the pairs were judged: later ones would add unjudged pairs


def build_pairs(cache: Path) -> list[Pair]:
    """At least 20 pairs; which side gets the plain growth alternates, so neither side is always the 'right' one."""
    g = {name: grown(name, cache) for name in JUDGED_MODELS}
    specs: list[tuple[str, str, np.ndarray, str, np.ndarray, str]] = []
    for name, img in g.items():
        specs.append((f"{name}: shuffled", name, img, "growth", shuffled(img), "16 px tiles shuffled"))
        specs.append((f"{name}: zoom", name, img, "growth", zoomed(img), "zoomed 2x"))
    for name in ("pebbles", "coffee_beans", "gravel_gray", "autumn_leaves", "hubble_dots"):
        specs.append((f"{name}: shrink", name, g[name], "growth", shrunk(g[name]), "shrunk 2x, tiled"))
    for name in ("pebbles", "coffee_beans", "brick_gray", "hubble_dots"):
        specs.append((f"{name}: blur", name, g[name], "growth", blurred(g[name]), "blurred sigma 2"))
    for name in ("brick_gray", "grass_gray", "starry_sky"):
        specs.append((f"{name}: rot90", name, g[name], "growth", np.rot90(g[name]).copy(), "rotated 90"))
    specs.append(("gravel_gray: vs grass", "gravel_gray", g["gravel_gray"], "growth", g["grass_gray"], "grass_gray's growth"))
    specs.append(("brick_gray: vs gravel", "brick_gray", g["brick_gray"], "growth", g["gravel_gray"], "gravel_gray's growth"))
    specs.append(("pebbles: vs coffee", "pebbles", g["pebbles"], "growth", g["coffee_beans"], "coffee_beans' growth"))
    specs.append(("coffee_beans: shuffled vs shrunk", "coffee_beans", shuffled(g["coffee_beans"]), "shuffled",
                  shrunk(g["coffee_beans"]), "shrunk 2x"))
    stones, speckle = Path("/tmp/mt/A/grown.png"), Path("/tmp/mt/multi/grown.png")
    if stones.exists() and speckle.exists():
        specs.append(("pebbles: stones vs speckle", "pebbles", np.asarray(Image.open(stones).convert("RGB"))[:SIZE, :SIZE],
                      "own rule (stones)", np.asarray(Image.open(speckle).convert("RGB"))[:SIZE, :SIZE], "two-texture rule"))
    first_trial = len(specs)
    # The second trial's hard pairs: colours, grain and spectrum kept, objects broken.
    objects = ("pebbles", "coffee_beans", "brick_gray", "autumn_leaves", "hubble_dots", "gravel_gray")
    for k, name in enumerate(objects):
        specs.append((f"{name}: phase-randomised", name, g[name], "growth", phase_randomised(g[name], k),
                      "phases randomised, histogram matched"))
    for k, name in enumerate(objects):
        own = np.ascontiguousarray(target_image(name)[:, ::-1])
        specs.append((f"{name}: target vs its phase-randomised", name, own, "target, mirrored", phase_randomised(own, 10 + k),
                      "target phase-randomised"))
    for k, name in enumerate(("pebbles", "coffee_beans", "brick_gray", "autumn_leaves", "hubble_dots", "starry_sky")):
        specs.append((f"{name}: seamless shuffle", name, g[name], "growth", voronoi_shuffled(g[name], seed=20 + k),
                      "Voronoi cells rolled, seams blended"))
    retrained = Path("/tmp/starry_new")  # starry_sky trained again under today's loss (RESEARCH.md, third session)
    if (retrained / "config.json").exists():
        specs.append(("starry_sky: old vs new spectrum term", "starry_sky", g["starry_sky"], "bundled (radial spectrum)",
                      grown("starry_new", cache, retrained), "trained again (orientation sectors)"))
    pairs = []
    for i, (pname, target, first, first_desc, second, second_desc) in enumerate(specs):
        if i % 2:  # swap every other pair
            first, first_desc, second, second_desc = second, second_desc, first, first_desc
        pairs.append(Pair(pname, target, first, second, first_desc, second_desc, hard=i >= first_trial))
    return pairs


# What the eye says, looking at the contact sheets (target | A | B): the side that looks more like the target
# and why, or "tie" where the eye cannot choose (ties count for neither measure and are left out of agreement).
EYE: dict[str, tuple[str, str]] = {
    "autumn_leaves: shuffled": ("A", "whole leaf shapes; B has tile seams and cut leaves"),
    "autumn_leaves: zoom": ("B", "A's leaves are far too big and soft"),
    "brick_gray: shuffled": ("A", "unbroken columns of bricks; B's rows jump at tile edges"),
    "brick_gray: zoom": ("B", "A's bricks twice too big and soft"),
    "coffee_beans: shuffled": ("A", "whole beans; B's beans are cut at tile edges"),
    "coffee_beans: zoom": ("B", "A's beans twice the target's"),
    "grass_gray: shuffled": ("tie", "fine grain, the shuffle is invisible (control)"),
    "grass_gray: zoom": ("B", "A is coarse and blurry, the target is fine blades"),
    "gravel_gray: shuffled": ("tie", "fine grain, the shuffle is invisible (control)"),
    "gravel_gray: zoom": ("B", "A's grains twice too big and soft"),
    "hubble_dots: shuffled": ("A", "weak: B has a few cut dots and faint tile edges"),
    "hubble_dots: zoom": ("B", "A's dots too big, blurry and few"),
    "pebbles: shuffled": ("A", "whole outlined stones; B's outlines are broken"),
    "pebbles: zoom": ("B", "A's stones twice too big"),
    "starry_sky: shuffled": ("A", "continuous strokes; B is a blocky patchwork"),
    "starry_sky: zoom": ("B", "weak: A is smeared, the painting's strokes are crisp"),
    "pebbles: shrink": ("A", "B's stones are much smaller than the target's"),
    "coffee_beans: shrink": ("B", "A's beans are tiny, the target's large"),
    "gravel_gray: shrink": ("A", "B is a fine noise, no grains"),
    "autumn_leaves: shrink": ("B", "A's leaves are tiny and repeat"),
    "hubble_dots: shrink": ("A", "weak: B is a dense even sprinkle, the target sparse"),
    "pebbles: blur": ("B", "A has no stones left"),
    "coffee_beans: blur": ("A", "B has no bean outlines"),
    "brick_gray: blur": ("B", "A has no mortar lines"),
    "hubble_dots: blur": ("A", "B's dots are soft smudges"),
    "brick_gray: rot90": ("B", "the target's bricks stand upright"),
    "grass_gray: rot90": ("tie", "no direction to see (control)"),
    "starry_sky: rot90": ("B", "weak: the painting's strokes run across, A's run up"),
    "gravel_gray: vs grass": ("A", "A has grains; B is darker streaky blades"),
    "brick_gray: vs gravel": ("B", "A has no bricks at all"),
    "pebbles: vs coffee": ("A", "A has small outlined stones; B flat brown blocks"),
    "coffee_beans: shuffled vs shrunk": ("B", "B's pieces are bean-sized though cut; A's beans tiny"),
    "pebbles: stones vs speckle": ("A", "A has faceted stones; B is a fine speckle"),
    # The second trial (hard pairs), judged on the sheets before any measure was run on them.
    "pebbles: phase-randomised": ("B", "B has whole outlined stones; A is a speckle, though with the target's blues"),
    "coffee_beans: phase-randomised": ("A", "A has beans; B is a dark mottle on tan"),
    "brick_gray: phase-randomised": ("B", "B has bricks and mortar; A is vertical streaks"),
    "autumn_leaves: phase-randomised": ("A", "A has leaf-like lobes with outlines; B is a cloudy mottle"),
    "hubble_dots: phase-randomised": ("B", "B has round separate dots; A is a coloured speckle"),
    "gravel_gray: phase-randomised": ("tie", "both a fine grey grain, I cannot tell them apart"),
    "pebbles: target vs its phase-randomised": ("B", "B is the target mirrored; A a multicoloured speckle"),
    "coffee_beans: target vs its phase-randomised": ("A", "A is the target mirrored; B a granite-like mottle"),
    "brick_gray: target vs its phase-randomised": ("B", "B is the target mirrored; A criss-cross streaks"),
    "autumn_leaves: target vs its phase-randomised": ("A", "A is the target mirrored; B a cloudy mottle"),
    "hubble_dots: target vs its phase-randomised": ("B", "B is the target mirrored; A fringed speckle, no round galaxies"),
    "gravel_gray: target vs its phase-randomised": ("A", "weak: A has distinct grains; B a softer noise of the same grain size"),
    "pebbles: seamless shuffle": ("B", "weak: A has a few smeared, broken stones; B's are all whole"),
    "coffee_beans: seamless shuffle": ("A", "B has beans cut and glued to other beans, in the lower half most"),
    "brick_gray: seamless shuffle": ("B", "A has doubled, ghostly mortar lines and broken bricks"),
    "autumn_leaves: seamless shuffle": ("tie", "I cannot see the cuts"),
    "hubble_dots: seamless shuffle": ("tie", "dots are smaller than the cells; hardly any is cut (control)"),
    "starry_sky: seamless shuffle": ("tie", "I cannot see the cuts"),
    "starry_sky: old vs new spectrum term": ("B", ("B has long layered brush strokes like the painting's; A is a mottle "
                                            "of short spiky clusters without strokes")),
}


def contact_sheet(pairs: list[Pair], first: int, path: Path, scale: int = 1, quality_jpeg: int = 60) -> None:
    """Rows of target | A | B with the pair's number and name."""
    cell, label = SIZE * scale, 14
    sheet = Image.new("RGB", (3 * cell + 4 * 4, len(pairs) * (cell + label + 4) + 4), "white")
    draw = ImageDraw.Draw(sheet)
    for row, pair in enumerate(pairs):
        y = 4 + row * (cell + label + 4)
        draw.text((4, y), f"{first + row}. {pair.name}   (target | A | B)", fill="black")
        for col, img in enumerate((target_image(pair.target), pair.a, pair.b)):
            sheet.paste(Image.fromarray(img).resize((cell, cell), Image.NEAREST), (4 + col * (cell + 4), y + label))
    if path.suffix == ".jpg":
        sheet.save(path, quality=quality_jpeg)
    else:
        sheet.save(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, default=Path("/tmp/shapes_cache"), help="grown PNGs are cached here")
    parser.add_argument("--sheets", type=Path, default=None, help="write contact sheets (PNG, 2x) here to judge by eye")
    parser.add_argument("--docs", type=Path, default=None, help="write 3 small JPEG sheets here")
    parser.add_argument("--docs-hard", type=Path, default=None, help="write 2 small JPEG sheets of the hard pairs here")
    parser.add_argument("--sheets-only", action="store_true", help="write the sheets and stop (to judge blind)")
    parser.add_argument("--own-levels", action="store_true", help="cut each image at its own luminance quantiles")
    args = parser.parse_args()
    torch.set_num_threads(1)
    args.cache.mkdir(parents=True, exist_ok=True)
    pairs = build_pairs(args.cache)
    if args.sheets:
        args.sheets.mkdir(parents=True, exist_ok=True)
        for start in range(0, len(pairs), 5):
            contact_sheet(pairs[start:start + 5], start + 1, args.sheets / f"sheet{start // 5 + 1}.png", scale=2)
    if args.docs_hard:
        args.docs_hard.mkdir(parents=True, exist_ok=True)
        first = next(i for i, p in enumerate(pairs) if p.hard)
        per = math.ceil((len(pairs) - first) / 2)
        for k in range(2):
            start = first + k * per
            contact_sheet(pairs[start:start + per], start + 1, args.docs_hard / f"shapes2_hard_{k + 1}.jpg")
    if args.sheets_only:
        return
    if args.docs:
        args.docs.mkdir(parents=True, exist_ok=True)
        per = math.ceil(len(pairs) / 3)
        for k in range(3):
            contact_sheet(pairs[k * per:(k + 1) * per], k * per + 1, args.docs / f"shapes_pairs_{k + 1}.jpg")
    targets = {name: load_target(ROOT / "models" / name / "target.png", SIZE) for name in {p.target for p in pairs}}
    measures = ("current", "blob", "edge", "phase")
    agree = {(k, hard): 0 for k in measures for hard in (False, True)}
    judged, misses = {False: 0, True: 0}, {k: [] for k in measures}
    print("| # | pair | A | B | eye | why | current A / B | pick | blob A / B | pick | edge A / B | pick "
          "| phase A / B | pick |")
    print("|---:|---|---|---|:-:|---|---|:-:|---|:-:|---|:-:|---|:-:|")
    for i, pair in enumerate(pairs, 1):
        t_uint8 = (targets[pair.target][0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        values = {
            "current": [current_score(img, targets[pair.target]) for img in (pair.a, pair.b)],
            "blob": [shape_score(img, t_uint8, args.own_levels).combined for img in (pair.a, pair.b)],
            "edge": [edge_score(img, t_uint8) for img in (pair.a, pair.b)],
            "phase": [phase_score(img, t_uint8) for img in (pair.a, pair.b)],
        }
        picks = {k: "A" if v[0] < v[1] else "B" for k, v in values.items()}
        eye, why = EYE.get(pair.name, ("?", "not judged yet"))
        if eye in ("A", "B"):
            judged[pair.hard] += 1
            for k, pick in picks.items():
                if pick == eye:
                    agree[k, pair.hard] += 1
                else:
                    misses[k].append(i)
        cells = " | ".join(f"{values[k][0]:.2f} / {values[k][1]:.2f} | {picks[k]}" for k in measures)
        print(f"| {i}{'*' if pair.hard else ''} | {pair.name} | {pair.a_desc} | {pair.b_desc} | {eye} | {why} | {cells} |",
              flush=True)
    total = judged[False] + judged[True]
    if total:
        print("\n| measure | all pairs | first trial's | hard pairs (*) | disagrees on |\n|---|---:|---:|---:|---|")
        for k in measures:
            both = agree[k, False] + agree[k, True]
            print(f"| {k} | {both}/{total} ({100 * both / total:.0f}%) | {agree[k, False]}/{judged[False]} "
                  f"| {agree[k, True]}/{judged[True]} ({100 * agree[k, True] / max(judged[True], 1):.0f}%) | {misses[k]} |")

if __name__ == "__main__":
    main()
