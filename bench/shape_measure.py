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

    python bench/shape_measure.py --cache /tmp/shapes_cache --sheets /tmp/shapes_cache/sheets
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFilter
from scipy import ndimage
from scipy.stats import wasserstein_distance

from nca_gradio import quality
from nca_gradio.images import load_target

ROOT = Path(__file__).resolve().parent.parent
SIZE = 128
LEVELS = (0.2, 0.35, 0.5, 0.5, 0.65, 0.8)  # quantiles of the target's luminance; below 0.5 dark blobs, else bright
DARK = (True, True, True, False, False, False)  # the minority phase at each level: the majority one percolates
PRE_BLUR = 1.0  # Gaussian sigma in pixels before thresholding, so one-pixel grain inside a stone does not cut it up
FLOOR_EPS = 1e-6


# ---------------------------------------------------------------- the measure


def luminance(img: np.ndarray) -> np.ndarray:
    """Luminance in [0, 1] of an HxWx3 uint8 image, lightly blurred (see PRE_BLUR)."""
    grey = img[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114]) / 255.0
    return ndimage.gaussian_filter(grey, PRE_BLUR, mode="wrap") if PRE_BLUR > 0 else grey


def blobs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Area and compactness (4 pi A / P^2; pi/4 for a pixel square) of each 4-connected blob of a mask.

    The perimeter counts pixel edges between the blob and anything else, the frame included, so a blob cut by
    the border is less compact; both sides of every comparison are cut by the same 128 x 64 frame.
    """
    labels, count = ndimage.label(mask)
    if count == 0:
        return np.zeros(0), np.zeros(0)
    padded = np.pad(labels, 1)
    centre = padded[1:-1, 1:-1]
    perimeter = np.zeros(count + 1)
    for shifted in (padded[:-2, 1:-1], padded[2:, 1:-1], padded[1:-1, :-2], padded[1:-1, 2:]):
        edge = (centre > 0) & (shifted != centre)
        perimeter += np.bincount(centre[edge], minlength=count + 1)
    area = np.bincount(labels.ravel(), minlength=count + 1)[1:].astype(np.float64)
    return area, 4 * math.pi * area / np.maximum(perimeter[1:], 1.0) ** 2


@dataclass(frozen=True)
class BlobStats:
    """Per level: the blobs' log2 areas, compactness and areas (the weights), pooled over the image's halves."""

    log_area: list[np.ndarray]
    compact: list[np.ndarray]
    weight: list[np.ndarray]


def blob_stats(images: list[np.ndarray], thresholds: np.ndarray) -> BlobStats:
    """Blob statistics of one or more luminance images (pooled), at the given thresholds."""
    log_area, compact, weight = [], [], []
    for threshold, dark in zip(thresholds, DARK):
        areas, comps = zip(*(blobs(grey < threshold if dark else grey > threshold) for grey in images))
        area = np.concatenate(areas)
        log_area.append(np.log2(np.maximum(area, 1.0)))
        compact.append(np.concatenate(comps))
        weight.append(area)
    return BlobStats(log_area, compact, weight)


def _w1(u: np.ndarray, v: np.ndarray, uw: np.ndarray, vw: np.ndarray, empty: float) -> float:
    if len(u) == 0 or len(v) == 0:
        return 0.0 if len(u) == len(v) else empty
    return float(wasserstein_distance(u, v, uw, vw))


def stats_distance(a: BlobStats, b: BlobStats) -> tuple[float, float]:
    """Summed over levels: the area-weighted W1 distance of log2 area, and of compactness."""
    area = sum(_w1(a.log_area[i], b.log_area[i], a.weight[i], b.weight[i], 13.0) for i in range(len(LEVELS)))
    comp = sum(_w1(a.compact[i], b.compact[i], a.weight[i], b.weight[i], 1.0) for i in range(len(LEVELS)))
    return area, comp


def _halves(grey: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    width = grey.shape[1]
    return grey[:, : width // 2], grey[:, width // 2:]


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
    target_grey, gen_grey = luminance(target), luminance(generated)
    thresholds = np.quantile(target_grey, LEVELS)
    left, right = (blob_stats([h], thresholds) for h in _halves(target_grey))
    gen = blob_stats(list(_halves(gen_grey)), np.quantile(gen_grey, LEVELS) if own_levels else thresholds)
    floor = stats_distance(left, right)
    to_left, to_right = stats_distance(gen, left), stats_distance(gen, right)
    ratios = [(to_left[k] + to_right[k]) / 2 / max(floor[k], FLOOR_EPS) for k in range(2)]
    return ShapeScore(sum(ratios) / 2, ratios[0], ratios[1])


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


def grown(name: str, cache: Path) -> np.ndarray:
    """A bundled model's 128 px growth after 1,024 steps (float32), grown once and cached as a PNG."""
    path = cache / f"{name}.png"
    if not path.exists():
        from nca_gradio.model_folder import load_folder
        from nca_gradio.render import grow

        image = grow(load_folder(ROOT / "models" / name), size=SIZE, steps=1024, every=1024, precision="float32",
                     keep_frames=False).final
        Image.fromarray(image).save(path)
    return np.asarray(Image.open(path).convert("RGB"))


@dataclass(frozen=True)
class Pair:
    name: str
    target: str  # a bundled model's name: its target.png is the target
    a: np.ndarray
    b: np.ndarray
    a_desc: str
    b_desc: str


def build_pairs(cache: Path) -> list[Pair]:
    """At least 20 pairs; which side gets the plain growth alternates, so neither side is always the 'right' one."""
    g = {name: grown(name, cache) for name in sorted(p.name for p in (ROOT / "models").iterdir() if (p / "target.png").exists())}
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
    pairs = []
    for i, (pname, target, first, first_desc, second, second_desc) in enumerate(specs):
        if i % 2:  # swap every other pair
            first, first_desc, second, second_desc = second, second_desc, first, first_desc
        pairs.append(Pair(pname, target, first, second, first_desc, second_desc))
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
}


def target_image(name: str) -> np.ndarray:
    return np.asarray(Image.open(ROOT / "models" / name / "target.png").convert("RGB").resize((SIZE, SIZE)))


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
    parser.add_argument("--own-levels", action="store_true", help="cut each image at its own luminance quantiles")
    args = parser.parse_args()
    torch.set_num_threads(1)
    args.cache.mkdir(parents=True, exist_ok=True)
    pairs = build_pairs(args.cache)
    if args.sheets:
        args.sheets.mkdir(parents=True, exist_ok=True)
        for start in range(0, len(pairs), 5):
            contact_sheet(pairs[start:start + 5], start + 1, args.sheets / f"sheet{start // 5 + 1}.png", scale=2)
    if args.docs:
        args.docs.mkdir(parents=True, exist_ok=True)
        per = math.ceil(len(pairs) / 3)
        for k in range(3):
            contact_sheet(pairs[k * per:(k + 1) * per], k * per + 1, args.docs / f"shapes_pairs_{k + 1}.jpg")
    targets = {name: load_target(ROOT / "models" / name / "target.png", SIZE) for name in {p.target for p in pairs}}
    agree = {"shape": 0, "current": 0}
    judged, misses = 0, {"shape": [], "current": []}
    print("| # | pair | A | B | eye | why | shape A / B | shape pick | current A / B | current pick |")
    print("|---:|---|---|---|:-:|---|---|:-:|---|:-:|")
    for i, pair in enumerate(pairs, 1):
        t_uint8 = (targets[pair.target][0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        sa, sb = (shape_score(img, t_uint8, args.own_levels).combined for img in (pair.a, pair.b))
        ca, cb = current_score(pair.a, targets[pair.target]), current_score(pair.b, targets[pair.target])
        picks = {"shape": "A" if sa < sb else "B", "current": "A" if ca < cb else "B"}
        eye, why = EYE.get(pair.name, ("?", "not judged yet"))
        if eye in ("A", "B"):
            judged += 1
            for k, pick in picks.items():
                if pick == eye:
                    agree[k] += 1
                else:
                    misses[k].append(i)
        print(f"| {i} | {pair.name} | {pair.a_desc} | {pair.b_desc} | {eye} | {why} | {sa:.2f} / {sb:.2f} | {picks['shape']} "
              f"| {ca:.2f} / {cb:.2f} | {picks['current']} |", flush=True)
    if judged:
        for k, count in agree.items():
            print(f"{k}: agrees with the eye on {count}/{judged} ({100 * count / judged:.0f}%); disagrees on {misses[k]}")


if __name__ == "__main__":
    main()
