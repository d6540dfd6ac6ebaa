"""Loading and validating user images: every failure is one `ImageError` with a one-line message."""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import UserError

MAX_PIXELS = 40_000_000  # a 6000x6000 photo passes; a decompression bomb does not
MIN_SIDE = 32
FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "TIFF", "GIF", "MPO")

ImageSource = str | os.PathLike | bytes | Image.Image | np.ndarray


class ImageError(UserError, ValueError):
    """A texture image that cannot be used, with a message that says what to do."""


def load_image(source: ImageSource) -> Image.Image:
    """Open a texture as 8-bit RGB, honouring EXIF orientation.

    Accepts a path, raw bytes, a PIL image or an HxW[xC] array. Alpha is
    composited on mid-grey; 16-bit and palette images are converted; a GIF
    gives its first frame.
    """
    if isinstance(source, np.ndarray):
        return _array_to_rgb(source)
    if isinstance(source, Image.Image):
        image = source
    else:
        image = _open(source)
    _check_size(image.size)
    try:
        image.seek(0)
        image.load()
        image = ImageOps.exif_transpose(image) or image
        return _to_rgb(image)
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageError(f"the image data is corrupt or truncated ({exc}); re-export it as PNG or JPEG") from None


def _open(source: str | os.PathLike | bytes) -> Image.Image:
    name = "the uploaded data" if isinstance(source, bytes) else str(source)
    if not isinstance(source, bytes):
        path = Path(source)
        if not path.exists():
            raise ImageError(f"{name}: no such file")
        if path.is_dir():
            raise ImageError(f"{name} is a folder, not an image file")
        if not path.is_file():  # a pipe or a device could block the read forever
            raise ImageError(f"{name} is not a regular file (a pipe or a device?): save the image to a file first")
    stream = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(stream)
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise ImageError(f"{name} is too large: at most {MAX_PIXELS:,} pixels") from None
    except UnidentifiedImageError:
        raise ImageError(f"{name} is not an image this app can read: use PNG, JPEG, WebP, BMP, TIFF or GIF") from None
    except OSError as exc:
        raise ImageError(f"{name} could not be read ({exc})") from None
    if image.format not in FORMATS:
        raise ImageError(f"{name} is a {image.format} file: use PNG, JPEG, WebP, BMP, TIFF or GIF")
    return image


def _check_size(size: tuple[int, int]) -> None:
    width, height = size
    if width * height > MAX_PIXELS:
        raise ImageError(f"the image is {width}x{height}, too large: at most {MAX_PIXELS:,} pixels")
    if min(width, height) < MIN_SIDE:
        raise ImageError(f"the image is {width}x{height}, too small: each side needs at least {MIN_SIDE} pixels")


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if array.max() > 255 else 255.0
        image = Image.fromarray((array / peak * 255.0).round().clip(0, 255).astype(np.uint8), "L")
    elif image.mode == "F":
        array = np.asarray(image, dtype=np.float64)
        image = Image.fromarray((array.clip(0, 1) * 255.0).round().astype(np.uint8), "L")
    if image.mode == "P" or image.mode == "PA":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "La", "RGBa"):
        grey = Image.new("RGBA", image.size, (128, 128, 128, 255))
        image = Image.alpha_composite(grey, image.convert("RGBA"))
    return image.convert("RGB")


def _array_to_rgb(array: np.ndarray) -> Image.Image:
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 3, 4)):
        raise ImageError(f"an image array must be HxW, HxWx3 or HxWx4, got shape {array.shape}")
    _check_size((array.shape[1], array.shape[0]))
    if array.dtype != np.uint8:
        scale = 255.0 if array.max() <= 1.0 else 1.0
        array = (array.astype(np.float64) * scale).round().clip(0, 255).astype(np.uint8)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    return _to_rgb(Image.fromarray(array))


def crop_and_resize(image: Image.Image, size: int) -> Image.Image:
    """Centre-crop to a square and resize to size x size (Lanczos)."""
    width, height = image.size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    square = image.crop((left, top, left + side, top + side))
    return square.resize((size, size), Image.LANCZOS) if side != size else square


def image_to_tensor(image: Image.Image) -> torch.Tensor:
    """(1, 3, H, W) float in [0, 1]."""
    array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0).contiguous()


def tensor_to_image(x: torch.Tensor) -> Image.Image:
    """An (3, H, W) or (1, 3, H, W) tensor in [0, 1] as an 8-bit RGB image."""
    if x.ndim == 4:
        x = x[0]
    array = (x.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255.0).round().astype(np.uint8)
    return Image.fromarray(array, "RGB")


def load_target(source: ImageSource, size: int) -> torch.Tensor:
    """A texture image, ready to train on: (1, 3, size, size) in [0, 1]."""
    return image_to_tensor(crop_and_resize(load_image(source), size))
