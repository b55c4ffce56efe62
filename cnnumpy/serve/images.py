"""Uploaded images: read within limits, decoded, and shaped like the model's input.

The page sends the raw bytes of a PNG or JPEG as the request body. Every step guards
against a body that would otherwise hurt the server or be read wrong:

- the body is read within ``MAX_UPLOAD_BYTES`` (413) and a time limit
  (``cnnumpy.serve.body.read_body``);
- only PNG and JPEG are decoded, recognised by their first bytes (400 naming what
  came instead);
- the size the header declares is checked before any pixel is decoded, so that a
  decompression bomb (a small PNG declaring 30000 x 30000 pixels) is refused at once
  (400 over ``MAX_PIXELS``);
- a truncated or corrupt file is a 400 naming the decoder's complaint;
- a photo is turned upright as its EXIF orientation tag says, as the browser shows
  it (``upright``).

Then the pixels become what the model reads, grey or RGB, ``(C, H, W)`` in [0, 255]:

- transparent pixels are composited onto black for a grey model (a white stroke on a
  transparent canvas is a digit) and onto white for a colour one
  (``cnnumpy.cli.image_files.background``);
- for a grey model, a picture whose border is lighter than its centre (dark ink on
  white paper) is inverted: MNIST digits are white on black;
- a digit for a 28 x 28 grey model is fitted as MNIST's makers did (LeCun, Cortes &
  Burges, the MNIST page): the ink's bounding box is scaled into 20 x 20 keeping its
  aspect ratio (anti-aliased), then placed in the 28 x 28 field so that its centre of
  mass is at the field's centre. Other images are resized to ``H x W`` (bilinear).
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np

from cnnumpy.cli.image_files import background
from cnnumpy.serve.body import MAX_UPLOAD_BYTES, too_large
from cnnumpy.serve.errors import ApiError

MAX_PIXELS = 16_000_000
# MNIST: the digit's box is 20 x 20 in a 28 x 28 field
DIGIT_FIELD = (28, 28)
DIGIT_BOX = 20
# ink is what is brighter than the background by more than this share of the
# brightest ink: anti-aliased fringes below it do not stretch the bounding box
INK_LEVEL = 0.1
_MAGIC = {b"\x89PNG\r\n\x1a\n": "PNG", b"\xff\xd8\xff": "JPEG"}
_OTHER_FORMATS = (
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"BM", "a BMP image"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive"),
    (b"\x1f\x8b", "gzip data"),
    (b"<svg", "an SVG image (text)"),
)
EXIF_ORIENTATION = 0x0112  # the tag's number (EXIF 2.3, table 4)
_16_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")
_TRANSPARENT_MODES = ("RGBA", "LA", "La", "RGBa", "PA")


@dataclass
class Upload:
    """A decoded upload, as the model reads it.

    Attributes:
        pixels: ``(C, H, W)`` float32 in [0, 255], the model's input shape.
        inverted: the picture was dark on light and was inverted.
        fitted: the digit was fitted into the field the MNIST way.
    """

    pixels: np.ndarray
    inverted: bool
    fitted: bool


def describe_bytes(body: bytes) -> str:
    """What a body that is not a PNG nor a JPEG looks like, for the error message."""
    if body[:4] == b"RIFF" and body[8:12] == b"WEBP":
        return "a WebP image"
    for magic, name in _OTHER_FORMATS:
        if body.startswith(magic):
            return name
    text = body[:40].decode("utf-8", "replace")
    if all(ch.isprintable() or ch in "\t\r\n" for ch in text) and "\ufffd" not in text:
        return f"{len(body):,} bytes of text starting {text!r}"
    return f"{len(body):,} bytes starting {body[:8].hex(' ')}"


# -- decoding --------------------------------------------------------------------------
def read_upload(
    body: bytes, input_shape, *, fit_digit: bool | None = None
) -> np.ndarray:
    """Pixels ``(C, H, W)`` as floats in [0, 255] for a model taking ``input_shape``.

    See ``decode_upload``, which also tells whether the picture was inverted.
    """
    return decode_upload(body, input_shape, fit_digit=fit_digit).pixels


def decode_upload(body: bytes, input_shape, *, fit_digit: bool | None = None) -> Upload:
    """Decode ``body`` (PNG or JPEG bytes) into the model's input pixels.

    Args:
        body: the uploaded file's bytes.
        input_shape: the model's ``(C, H, W)``, C 1 (grey) or 3 (RGB).
        fit_digit: fit the digit the MNIST way; default True for a 1 x 28 x 28 model.
            Only grey images are fitted.

    Raises:
        ApiError: 413 over ``MAX_UPLOAD_BYTES``; 400 for an empty body, a body that
            is not a PNG or JPEG, an image over ``MAX_PIXELS`` or one that cannot be
            decoded.
    """
    C, H, W = _check_shape(input_shape)
    if fit_digit is None:
        fit_digit = (C, H, W) == (1, *DIGIT_FIELD)
    if fit_digit and C != 1:
        raise ApiError(
            400, f"digit fitting needs a grey model (1, H, W), not {C, H, W}"
        )
    image = open_image(body)
    flat = flatten(image, C)
    inverted = C == 1 and lighter_border(flat)
    if inverted:
        flat = 255.0 - flat
    if fit_digit:
        pixels = fit_digit_field(flat, (H, W))[None]
    else:
        pixels = resize(flat, (H, W))
        pixels = pixels[None] if C == 1 else pixels.transpose(2, 0, 1)
    return Upload(np.ascontiguousarray(pixels, dtype=np.float32), inverted, fit_digit)


def _check_shape(input_shape) -> tuple[int, int, int]:
    shape = tuple(int(d) for d in input_shape)
    if len(shape) != 3 or shape[0] not in (1, 3):
        raise ApiError(
            400, f"the model takes inputs {shape}, not grey or RGB images (C, H, W)"
        )
    return shape


def open_image(body: bytes):
    """``body`` opened and decoded by PIL, after the checks of the module docstring."""
    from PIL import Image

    if len(body) == 0:
        raise ApiError(400, "empty request body: expected the bytes of a PNG or JPEG")
    if len(body) > MAX_UPLOAD_BYTES:
        raise ApiError(413, too_large(MAX_UPLOAD_BYTES, f"{len(body):,} bytes"))
    kind = next((k for magic, k in _MAGIC.items() if body.startswith(magic)), None)
    if kind is None:
        raise ApiError(400, f"expected a PNG or JPEG image, got {describe_bytes(body)}")
    with warnings.catch_warnings():
        # every image PIL would warn about is over MAX_PIXELS, and refused
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(body), formats=[kind])
            _check_pixels(image.size)
            image.load()
        except ApiError:
            raise
        except Image.DecompressionBombError as exc:
            raise ApiError(
                400, f"the {kind} image has too many pixels ({exc})"
            ) from None
        except Exception as exc:  # PIL raises many types for a broken file
            raise ApiError(
                400, f"cannot decode the {kind} image: {_decoder_complaint(exc)}"
            ) from None
    return upright(image)


def upright(image):
    """``image`` turned as its EXIF orientation says: a phone stores a photo as the
    sensor saw it and the tag tells how to hold it, which the browser follows. A
    broken tag leaves the image as it is."""
    from PIL import ImageOps

    try:
        if image.getexif().get(EXIF_ORIENTATION, 1) == 1:
            return image  # upright already (or no tag): no copy
        return ImageOps.exif_transpose(image)
    except Exception:  # noqa: BLE001 - PIL raises many types for a broken EXIF block
        return image


def _decoder_complaint(exc: Exception) -> str:
    """PIL's reason in one line, without the in-memory file's address it names."""
    detail = " ".join(str(exc).split())
    if detail.startswith("cannot identify image file"):
        return "its header is broken (PIL cannot identify it)"
    return detail or type(exc).__name__


def _check_pixels(size: tuple[int, int]) -> None:
    width, height = size
    if width * height > MAX_PIXELS:
        raise ApiError(
            400,
            f"the image has too many pixels: {width} x {height} = "
            f"{width * height:,}; at most {MAX_PIXELS:,}",
        )
    if width * height == 0:
        raise ApiError(400, f"the image has no pixels ({width} x {height})")


def flatten(image, channels: int) -> np.ndarray:
    """``image`` as floats in [0, 255]: ``(h, w)`` grey or ``(h, w, 3)`` RGB.

    Transparency is composited onto ``background(channels)``; 16-bit grey is scaled
    to 8 bits; 32-bit and floating-point pixels (no fixed range) are refused.
    """
    from PIL import Image

    mode = "L" if channels == 1 else "RGB"
    if image.mode in _16_BIT_MODES:
        wide = np.asarray(image, dtype=np.float64)
        grey = wide * (255.0 / 65535.0)
        return grey if channels == 1 else np.repeat(grey[..., None], 3, axis=2)
    if image.mode in ("I", "F") or image.mode.startswith("I;"):
        raise ApiError(
            400,
            f"{image.mode!r} pixels (32-bit or floating point) have no fixed range; "
            "send 8-bit (or 16-bit grey) pixels",
        )
    if image.mode in _TRANSPARENT_MODES or "transparency" in image.info:
        rgba = image.convert("RGBA")
        under = Image.new("RGBA", rgba.size, background(channels, False))
        image = Image.alpha_composite(under, rgba)
    return np.asarray(image.convert(mode), dtype=np.float64)


def lighter_border(grey: np.ndarray) -> bool:
    """True when the border (the outer rows and columns) is mostly lighter than the
    centre (the middle half): dark ink on light paper.

    The border's median is compared with the centre's mean: a stroke that touches
    the border does not move the median, and ink in the centre lowers the mean.
    """
    h, w = grey.shape
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    centre = grey[h // 4 : h - h // 4, w // 4 : w - w // 4]
    if centre.size == 0:
        return False
    return bool(np.median(border) > centre.mean())


# -- shaping ---------------------------------------------------------------------------
def resize(pixels: np.ndarray, size: tuple[int, int], method: str = "bilinear"):
    """``(h, w)`` or ``(h, w, 3)`` floats resized to ``size = (H, W)`` by PIL
    (anti-aliased when shrinking), clipped to [0, 255]."""
    from PIL import Image

    H, W = size
    filters = {
        "bilinear": Image.Resampling.BILINEAR,
        "lanczos": Image.Resampling.LANCZOS,
    }
    planes = pixels[..., None] if pixels.ndim == 2 else pixels
    out = np.empty((H, W, planes.shape[2]), dtype=np.float32)
    for c in range(planes.shape[2]):
        plane = Image.fromarray(np.ascontiguousarray(planes[..., c], dtype=np.float32))
        out[..., c] = np.asarray(plane.resize((W, H), filters[method]))
    np.clip(out, 0.0, 255.0, out=out)
    return out[..., 0] if pixels.ndim == 2 else out


def fit_digit_field(grey: np.ndarray, field: tuple[int, int] = DIGIT_FIELD):
    """A digit (white on black) fitted into ``field`` as MNIST's were.

    1. ink = brightness above the background (the border's median), its brightest
       point stretched to 255 (a pencil's grey reads like the canvas's white);
    2. crop to the bounding box of the ink (values over ``INK_LEVEL`` of the
       brightest);
    3. scale the box so that its longer side is ``DIGIT_BOX`` (20 of 28) pixels,
       keeping the aspect ratio (Lanczos, anti-aliased);
    4. place it so that its centre of mass lands on the field's centre
       ``((H - 1) / 2, (W - 1) / 2)``, to the nearest pixel and inside the field.

    A blank picture gives a black field.

    Shape:
        grey: ``(h, w)``; returns ``field``.
    """
    H, W = field
    box = max(1, round(DIGIT_BOX * min(H, W) / DIGIT_FIELD[0]))
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    ink = np.clip(grey - np.median(border), 0.0, None)
    top = float(ink.max())
    out = np.zeros((H, W), dtype=np.float32)
    if top <= 0.0:
        return out
    ink *= 255.0 / top
    rows = np.flatnonzero((ink > INK_LEVEL * 255.0).any(axis=1))
    cols = np.flatnonzero((ink > INK_LEVEL * 255.0).any(axis=0))
    crop = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    scale = box / max(crop.shape)
    h = min(H, max(1, round(crop.shape[0] * scale)))
    w = min(W, max(1, round(crop.shape[1] * scale)))
    digit = resize(crop, (h, w), "lanczos")
    cy, cx = centre_of_mass(digit)
    r0 = int(np.clip(round((H - 1) / 2 - cy), 0, H - h))
    c0 = int(np.clip(round((W - 1) / 2 - cx), 0, W - w))
    out[r0 : r0 + h, c0 : c0 + w] = digit
    return out


def centre_of_mass(image: np.ndarray) -> tuple[float, float]:
    """``(row, column)`` of the brightness-weighted mean position (pixel indices)."""
    total = float(image.sum())
    if total <= 0.0:
        return (image.shape[0] - 1) / 2, (image.shape[1] - 1) / 2
    rows = np.arange(image.shape[0]) @ image.sum(axis=1) / total
    cols = np.arange(image.shape[1]) @ image.sum(axis=0) / total
    return float(rows), float(cols)
