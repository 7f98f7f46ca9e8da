"""Pictures, EXIF, tiny videos and thumbnails for the fake (Pillow only).

Scenes are drawn once at a small master size (sky gradient, sun, hills, grain and a caption)
and resized to each copy's dimensions, so copies of one group look alike and differ in size and
quality, and a terminal thumbnail looks like a photo rather than a flat block.
"""

from __future__ import annotations

import hashlib
import io
import random
import struct
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from PIL import Image, ImageDraw, ImageFont

from immich_dupes.fake._time import exif_offset, parse_exif_offset

THUMB_PX = 250
PREVIEW_PX = 1440

_MIME = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".webp": "image/webp",
    ".gif": "image/gif",
    ".heic": "image/heic",
    ".heif": "image/heif",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
    ".dng": "image/dng",
    ".mp4": "video/mp4",
    ".mov": "video/quicktime",
    ".m4v": "video/x-m4v",
    ".webm": "video/webm",
    ".mkv": "video/x-matroska",
    ".avi": "video/x-msvideo",
    ".3gp": "video/3gpp",
}


def mime_for(filename: str) -> str:
    dot = filename.rfind(".")
    return (
        _MIME.get(filename[dot:].lower(), "application/octet-stream")
        if dot >= 0
        else ("application/octet-stream")
    )


@dataclass(slots=True)
class FileMeta:
    """What metadata extraction finds in a file (before any API edit)."""

    width: int | None = None
    height: int | None = None
    local: datetime | None = None  # naive wall time of DateTimeOriginal
    offset: int | None = None  # OffsetTimeOriginal in minutes
    latitude: float | None = None
    longitude: float | None = None
    description: str = ""
    make: str | None = None
    model: str | None = None
    orientation: str | None = None


@dataclass(frozen=True, slots=True)
class ExifSpec:
    """EXIF to write into a generated JPEG."""

    local: datetime | None = None
    offset: int | None = None
    latitude: float | None = None
    longitude: float | None = None
    description: str = ""
    make: str | None = None
    model: str | None = None


def _dms(value: float) -> tuple[float, float, float]:
    v = abs(value)
    d = int(v)
    m = int((v - d) * 60)
    s = round((v - d - m / 60) * 3600, 4)
    return (float(d), float(m), s)


def _exif(spec: ExifSpec) -> Image.Exif:
    exif = Image.Exif()
    if spec.description:
        exif[0x010E] = spec.description
    if spec.make:
        exif[0x010F] = spec.make
    if spec.model:
        exif[0x0110] = spec.model
    if spec.local is not None:
        sub = exif.get_ifd(0x8769)
        sub[0x9003] = spec.local.strftime("%Y:%m:%d %H:%M:%S")
        if spec.offset is not None:
            sub[0x9011] = exif_offset(spec.offset)
    if spec.latitude is not None and spec.longitude is not None:
        gps = exif.get_ifd(0x8825)
        gps[1] = "N" if spec.latitude >= 0 else "S"
        gps[2] = _dms(spec.latitude)
        gps[3] = "E" if spec.longitude >= 0 else "W"
        gps[4] = _dms(spec.longitude)
    return exif


def encode_jpeg(img: Image.Image, quality: int = 90, exif: ExifSpec | None = None) -> bytes:
    buf = io.BytesIO()
    if exif is None:
        img.save(buf, "JPEG", quality=quality)
    else:
        img.save(buf, "JPEG", quality=quality, exif=_exif(exif))
    return buf.getvalue()


def encode_png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG", compress_level=1)
    return buf.getvalue()


def _rational(v: object) -> float:
    try:
        return float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError, ZeroDivisionError):
        return 0.0


def _gps_coord(values: object, ref: object) -> float | None:
    if not isinstance(values, tuple) or len(values) != 3:
        return None
    deg = _rational(values[0]) + _rational(values[1]) / 60 + _rational(values[2]) / 3600
    if isinstance(ref, bytes):
        ref = ref.decode(errors="ignore")
    if isinstance(ref, str) and ref.strip().upper() in ("S", "W"):
        deg = -deg
    return round(deg, 6)


def _text(v: object) -> str | None:
    if isinstance(v, bytes):
        v = v.decode(errors="ignore")
    if isinstance(v, str):
        v = v.strip("\x00 ").strip()
        return v or None
    return None


def read_file_meta(data: bytes) -> FileMeta:
    """Extract dimensions and the EXIF we care about from image bytes (empty meta if unreadable)."""
    meta = FileMeta()
    try:
        img = Image.open(io.BytesIO(data))
    except Exception:
        return meta
    with img:
        meta.width, meta.height = img.size
        try:
            exif = img.getexif()
        except Exception:
            return meta
        meta.description = _text(exif.get(0x010E)) or ""
        meta.make = _text(exif.get(0x010F))
        meta.model = _text(exif.get(0x0110))
        sub = exif.get_ifd(0x8769)
        raw_date = _text(sub.get(0x9003)) or _text(exif.get(0x0132))
        if raw_date:
            try:
                meta.local = datetime.strptime(raw_date[:19], "%Y:%m:%d %H:%M:%S")
            except ValueError:
                meta.local = None
        raw_off = _text(sub.get(0x9011))
        if raw_off and meta.local is not None:
            meta.offset = parse_exif_offset(raw_off)
        gps = exif.get_ifd(0x8825)
        if gps:
            meta.latitude = _gps_coord(gps.get(2), gps.get(1))
            meta.longitude = _gps_coord(gps.get(4), gps.get(3))
            if meta.latitude is None or meta.longitude is None:
                meta.latitude = meta.longitude = None
    return meta


# --------------------------------------------------------------------------- scenes

_PALETTES: tuple[tuple[tuple[int, int, int], tuple[int, int, int], tuple[int, int, int]], ...] = (
    ((38, 84, 180), (250, 186, 120), (44, 120, 64)),
    ((18, 30, 80), (220, 90, 60), (30, 60, 40)),
    ((110, 170, 230), (235, 240, 250), (70, 140, 90)),
    ((60, 20, 90), (250, 140, 90), (60, 50, 80)),
    ((140, 200, 240), (250, 230, 170), (190, 160, 90)),
    ((20, 60, 70), (120, 200, 190), (20, 90, 110)),
    ((200, 120, 60), (250, 220, 150), (120, 70, 40)),
    ((90, 110, 140), (200, 210, 220), (80, 90, 100)),
)

MASTER = (480, 360)


@lru_cache(maxsize=4)
def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except Exception:  # pragma: no cover - very old Pillow or no FreeType
        return ImageFont.load_default()


def render_scene(seed: int, caption: str, size: tuple[int, int] = MASTER) -> Image.Image:
    """A landscape-like RGB picture, deterministic for ``seed``."""
    rnd = random.Random(seed)
    w, h = MASTER
    sky_top, sky_bottom, ground = _PALETTES[seed % len(_PALETTES)]
    grad = Image.linear_gradient("L").resize((w, h))
    img = Image.composite(
        Image.new("RGB", (w, h), sky_bottom), Image.new("RGB", (w, h), sky_top), grad
    )
    draw = ImageDraw.Draw(img)
    sx, sy, sr = rnd.randint(40, w - 80), rnd.randint(20, h // 3), rnd.randint(18, 40)
    draw.ellipse((sx - sr, sy - sr, sx + sr, sy + sr), fill=(255, 236, 150))
    for layer in range(3):
        base = int(h * (0.55 + 0.12 * layer))
        pts = [(0, h)]
        for x in range(0, w + 40, 40):
            pts.append((x, base + rnd.randint(-30, 30)))
        pts.append((w, h))
        shade = tuple(max(0, min(255, c - 25 * layer + rnd.randint(-10, 10))) for c in ground)
        draw.polygon(pts, fill=(shade[0], shade[1], shade[2]))
    for _ in range(rnd.randint(2, 5)):
        x = rnd.randint(0, w)
        y = rnd.randint(int(h * 0.6), h - 10)
        tw = rnd.randint(6, 14)
        draw.rectangle((x, y - tw * 4, x + tw // 3, y), fill=(60, 40, 30))
        draw.ellipse(
            (x - tw, y - tw * 6, x + tw, y - tw * 3), fill=(30, 90 + rnd.randint(0, 60), 40)
        )
    # Grain from the scene's own seed: Image.effect_noise is unseeded, which made the
    # "same" sample photo differ in bytes (and checksum) between two builds in one process.
    noise = Image.frombytes("L", (w, h), rnd.randbytes(w * h)).convert("RGB")
    img = Image.blend(img, noise, 0.06)
    if caption:
        draw = ImageDraw.Draw(img)
        font = _font(22)
        draw.rectangle((8, 8, 16 + 12 * len(caption), 40), fill=(0, 0, 0))
        draw.text((14, 10), caption, font=font, fill=(255, 255, 255))
    if size != MASTER:
        img = img.resize(size, Image.Resampling.BICUBIC)
    return img


# --------------------------------------------------------------------------- videos


def fake_mp4(seed: int, size: int) -> bytes:
    """Bytes that start like an MP4 (ftyp box, then mdat) of about ``size`` bytes."""
    ftyp = struct.pack(">I4s4sI", 24, b"ftyp", b"isom", 0x200) + b"isomiso2"
    payload_len = max(64, size - len(ftyp) - 8)
    block = hashlib.sha256(f"video:{seed}".encode()).digest() * 64
    payload = (block * (payload_len // len(block) + 1))[:payload_len]
    return ftyp + struct.pack(">I4s", payload_len + 8, b"mdat") + payload


# --------------------------------------------------------------------------- thumbnails


def make_thumbnail(source: Image.Image | bytes, kind: str, *, video_badge: bool = False) -> bytes:
    """``thumbnail`` → WebP of 250 px long side; ``preview`` → JPEG of up to 1440 px."""
    target = THUMB_PX if kind == "thumbnail" else PREVIEW_PX
    try:
        img = Image.open(io.BytesIO(source)) if isinstance(source, bytes) else source
        if isinstance(source, bytes) and img.format == "JPEG":
            img.draft("RGB", (target, target))
        img = img.convert("RGB")
    except Exception:  # not a picture Pillow can read: Immich would show its placeholder
        img = render_scene(0, "no preview")
    if max(img.size) > target:
        img.thumbnail((target, target), Image.Resampling.BILINEAR)
    if video_badge:
        draw = ImageDraw.Draw(img)
        w, h = img.size
        r = max(8, min(w, h) // 8)
        cx, cy = w // 2, h // 2
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=(0, 0, 0))
        draw.polygon(
            [(cx - r // 3, cy - r // 2), (cx - r // 3, cy + r // 2), (cx + r // 2, cy)],
            fill=(255, 255, 255),
        )
    buf = io.BytesIO()
    if kind == "thumbnail":
        img.save(buf, "WEBP", quality=80)
    else:
        img.save(buf, "JPEG", quality=80)
    return buf.getvalue()
