"""Image loading: formats, modes, EXIF orientation, size limits, and one clear error type."""

import io

import numpy as np
import pytest
from PIL import Image

from nca_gradio import images
from nca_gradio.images import ImageError, crop_and_resize, load_image, load_target


def _gradient(width: int = 64, height: int = 48) -> Image.Image:
    x = np.linspace(0, 255, width, dtype=np.uint8)[None, :].repeat(height, 0)
    y = np.linspace(0, 255, height, dtype=np.uint8)[:, None].repeat(width, 1)
    return Image.fromarray(np.stack([x, y, 255 - x], axis=-1), "RGB")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "BMP", "TIFF", "GIF"])
def test_every_supported_format_loads_as_rgb(tmp_path, fmt):
    path = tmp_path / f"texture.{fmt.lower()}"
    _gradient().save(path, fmt)
    image = load_image(path)
    assert image.mode == "RGB" and image.size == (64, 48)


def test_first_frame_of_an_animated_gif(tmp_path):
    frames = [Image.new("RGB", (40, 40), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    assert load_image(path).getpixel((5, 5))[0] > 200


@pytest.mark.parametrize("mode", ["L", "P", "RGBA", "LA", "I;16", "CMYK"])
def test_modes_are_converted(tmp_path, mode):
    base = _gradient()
    if mode == "I;16":
        array = (np.asarray(base.convert("L"), dtype=np.uint16) * 257)
        image = Image.fromarray(array.astype("<u2"))
    else:
        image = base.convert(mode)
    path = tmp_path / ("t.tiff" if mode == "CMYK" else "t.png")
    image.save(path)
    loaded = load_image(path)
    assert loaded.mode == "RGB" and loaded.size == (64, 48)
    if mode == "I;16":  # 16-bit is scaled down, not clipped to white
        assert 100 < np.asarray(loaded).mean() < 160


def test_transparent_pixels_become_mid_grey(tmp_path):
    path = tmp_path / "clear.png"
    Image.new("RGBA", (40, 40), (255, 0, 0, 0)).save(path)
    assert load_image(path).getpixel((0, 0)) == (128, 128, 128)


def test_exif_orientation_is_honoured(tmp_path):
    image = _gradient(64, 40)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    path = tmp_path / "rotated.jpg"
    image.save(path, exif=exif.tobytes())
    assert load_image(path).size == (40, 64)


def test_bytes_and_arrays_are_accepted():
    buffer = io.BytesIO()
    _gradient().save(buffer, "PNG")
    assert load_image(buffer.getvalue()).size == (64, 48)
    assert load_image(np.random.rand(40, 50, 3)).size == (50, 40)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p.write_bytes(b"this is not an image"), "not an image this app can read"),
        (lambda p: p.write_bytes(_png_bytes()[:200]), "corrupt or truncated"),
        (lambda p: Image.new("RGB", (20, 100)).save(p, "PNG"), "too small"),
    ],
)
def test_bad_images_raise_one_clear_error(tmp_path, make, message):
    path = tmp_path / "bad.png"
    make(path)
    with pytest.raises(ImageError, match=message) as info:
        load_image(path)
    assert "\n" not in str(info.value)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(ImageError, match="no such file"):
        load_image(tmp_path / "nope.png")
    with pytest.raises(ImageError, match="is a folder"):
        load_image(tmp_path)


def test_pixel_cap_stops_decompression_bombs(tmp_path, monkeypatch):
    monkeypatch.setattr(images, "MAX_PIXELS", 100 * 100)
    path = tmp_path / "big.png"
    Image.new("RGB", (200, 200)).save(path)
    with pytest.raises(ImageError, match="too large"):
        load_image(path)


def test_crop_and_resize_to_the_training_size():
    square = crop_and_resize(_gradient(120, 80), 64)
    assert square.size == (64, 64)
    target = load_target(_gradient(120, 80), 32)
    assert target.shape == (1, 3, 32, 32) and 0.0 <= target.min() and target.max() <= 1.0


def _png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.randint(0, 255, (64, 64, 3), dtype=np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def test_a_pipe_is_refused_without_reading_it(tmp_path):
    """Reading a FIFO blocks until someone writes to it: only regular files are opened."""
    import os

    fifo = tmp_path / "texture.png"
    os.mkfifo(fifo)
    with pytest.raises(ImageError, match="not a regular file"):
        load_image(fifo)
