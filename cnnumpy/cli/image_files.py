"""Image files for ``cnnumpy predict`` and ``visualize --image``: one file in, one
uint8 image ``(C, H, W)`` out, shaped like the model's input, or a one-line error.

The steps, each a guard against a file that would otherwise be read wrong:

- only a regular file is opened: opening a named pipe (FIFO) waits for a writer,
  forever, and a device may never end;
- the size the header declares is checked before any pixel is decoded, so that a
  decompression bomb (a small PNG declaring 30000 x 30000 pixels) is refused at once;
- 16-bit grey images are scaled to 8 bits (``v * 255 / 65535``) rather than clipped;
  32-bit and floating-point images (whose range is unknown) are refused;
- transparent pixels (RGBA, LA, a palette or a PNG with a transparent colour) are
  composited onto a background, since dropping the alpha channel leaves the colour
  under it, often black everywhere: a blank image (see ``background``);
- the image is converted to grey (``L``) or RGB and resized to ``H x W`` bilinearly;
  ``invert`` then maps v to 255 - v.
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from collections.abc import Iterator

import numpy as np

from cnnumpy.fileio import file_kind

#: Pixels read at most: 8192 x 8192 (a 48 MP photo fits; decoded as RGBA, 268 MB).
MAX_PIXELS = 8192 * 8192
_TRANSPARENT_MODES = ("RGBA", "LA", "La", "RGBa", "PA")
_16_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")


class ImageFileError(ValueError):
    """An image file that cannot be read as the model's input (one line, exit 2)."""


def background(channels: int, invert: bool) -> str:
    """The colour transparent pixels become: ``"black"`` or ``"white"``.

    A grey model reads digits drawn white on black (MNIST), so transparency becomes
    what ends up black in the model's input: black, or white before ``invert`` makes
    it black. A white stroke on a transparent canvas reads like a digit, and so does a
    dark stroke with ``--invert``, the option for dark digits on white paper. A colour
    model gets white, as image viewers show transparency.
    """
    return "white" if channels == 3 or invert else "black"


def read_image(path, input_shape: tuple[int, ...], invert: bool) -> np.ndarray:
    """An image file as uint8 ``(C, H, W)`` matching the model input ``input_shape``.

    Raises:
        ImageFileError: no such file, not an image, too large, unusual pixels, or a
            model that does not take grey or RGB images.
    """
    from PIL import Image

    if len(input_shape) != 3 or input_shape[0] not in (1, 3):
        raise ImageFileError(
            f"the model takes {tuple(input_shape)}, not grey or RGB images"
        )
    C, H, W = input_shape
    with _decoding_errors(path):
        _check_regular(path)  # before any open
        with Image.open(path) as image:
            _check_size(path, image.size)
            flat = _flatten(path, image, C, invert)
        flat = flat.resize((W, H), Image.Resampling.BILINEAR)
        pixels = np.asarray(flat, dtype=np.uint8)
    pixels = pixels[None] if C == 1 else pixels.transpose(2, 0, 1)
    return 255 - pixels if invert else pixels.copy()


@contextlib.contextmanager
def _decoding_errors(path) -> Iterator[None]:
    """Turn what PIL raises for a missing, foreign or broken file into one line.

    PIL's decoders raise many types for a malformed file (OSError, SyntaxError,
    struct.error, zlib.error, EOFError, IndexError...), so every Exception but ours
    becomes ``ImageFileError``. PIL's decompression bomb warning is silenced: every
    image it warns about is over ``MAX_PIXELS``, and refused.
    """
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            yield
        except ImageFileError:
            raise
        except FileNotFoundError:
            raise ImageFileError(f"{path}: no such image file") from None
        except Image.DecompressionBombError as exc:  # PIL refused it first
            raise ImageFileError(
                f"{path}: the image is too large to read ({exc})"
            ) from None
        except MemoryError:
            raise ImageFileError(f"{path}: out of memory decoding the image") from None
        except Exception as exc:
            detail = " ".join(str(exc).split()) or type(exc).__name__
            raise ImageFileError(f"{path}: cannot read the image ({detail})") from None


def _check_regular(path) -> None:
    """Refuse a FIFO, device, socket or folder before it is opened (a FIFO hangs)."""
    kind = file_kind(os.stat(path).st_mode)
    if kind == "FIFO":
        kind = "named pipe"
    if kind != "regular file":
        raise ImageFileError(f"{path} is not a regular file (a {kind})")


def _check_size(path, size: tuple[int, int]) -> None:
    width, height = size
    if width * height > MAX_PIXELS:
        raise ImageFileError(
            f"{path}: the image is too large to read ({width} x {height} pixels; "
            f"at most {MAX_PIXELS:,})"
        )


def _flatten(path, image, channels: int, invert: bool):
    """``image`` as ``L`` or ``RGB``, transparency composited, 16 bits scaled."""
    from PIL import Image

    mode = "L" if channels == 1 else "RGB"
    if image.mode in _16_BIT_MODES:
        wide = np.asarray(image).astype(np.uint32)
        grey = ((wide * 255 + 32767) // 65535).astype(np.uint8)  # rounded
        return Image.fromarray(grey).convert(mode)
    if image.mode in ("I", "F") or image.mode.startswith("I;"):
        raise ImageFileError(
            f"{path}: {image.mode!r} pixels (32-bit or floating point) have no fixed "
            "range; save the image with 8-bit (or 16-bit grey) pixels"
        )
    if image.mode not in _TRANSPARENT_MODES and "transparency" not in image.info:
        return image.convert(mode)
    rgba = image.convert("RGBA")
    colour = background(channels, invert)
    under = Image.new("RGBA", rgba.size, colour)
    flat = Image.alpha_composite(under, rgba).convert(mode)
    if _uniform(flat) and not _uniform(rgba.getchannel("A")):
        hint = f" (try {'without' if invert else 'with'} --invert)"
        print(
            f"cnnumpy: warning: {path} is blank once its transparent background "
            f"becomes {colour}: the drawing has the background's colour"
            f"{hint if channels == 1 else ''}",
            file=sys.stderr,
        )
    return flat


def _uniform(image) -> bool:
    """True when every pixel of every band of ``image`` has the same value."""
    extrema = image.getextrema()
    bands = extrema if isinstance(extrema[0], tuple) else (extrema,)
    return all(low == high for low, high in bands)
