"""The visible part of an electronic seal: a red round company seal (公章 layout) as a transparent PNG.

Layout of a PRC company seal: a red ring, a five-pointed star in the centre, the organisation's name
running clockwise along the upper arc with each character upright towards the rim, and the seal's purpose
written horizontally under the star. The PNG is only the picture; the legal force is in the signature.
"""

from __future__ import annotations

import math
from functools import cache, lru_cache
from io import BytesIO

from PIL import Image, ImageDraw, ImageFont

from engine.documents.pki import SEAL_PURPOSE

FONT_FILE = "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc"
RED = (218, 22, 32, 255)
_SUPERSAMPLE = 3  # drawn larger, then downsampled: smooth edges on the ring and the rotated characters


@cache
def _simplified_chinese_index() -> int:
    """The face index of Noto Sans CJK SC inside the collection (JP, KR, SC, TC, HK order is not guaranteed)."""
    for index in range(10):
        family, _style = ImageFont.truetype(FONT_FILE, 12, index=index).getname()
        if family == "Noto Sans CJK SC":
            return index
    raise RuntimeError(f"{FONT_FILE} has no Noto Sans CJK SC face")


def _font(pixels: float) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(FONT_FILE, round(pixels), index=_simplified_chinese_index())


@lru_cache(maxsize=64)
def seal_png(bank_name: str, size: int = 300) -> bytes:
    """A square transparent PNG of the bank's seal; the same name always gives the same bytes."""
    canvas = size * _SUPERSAMPLE
    image = Image.new("RGBA", (canvas, canvas), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    centre = canvas / 2
    ring = canvas * 0.03
    draw.ellipse([ring / 2, ring / 2, canvas - ring / 2, canvas - ring / 2], outline=RED, width=round(ring))
    _star(draw, centre, canvas * 0.14)
    _arc_text(image, bank_name, centre, radius=canvas * 0.355, glyph=canvas * 0.115)
    purpose_font = _font(canvas * 0.078)
    draw.text((centre, centre + canvas * 0.255), SEAL_PURPOSE, font=purpose_font, fill=RED, anchor="mm")
    out = BytesIO()
    image.resize((size, size), Image.Resampling.LANCZOS).save(out, format="PNG", optimize=True)
    return out.getvalue()


def _star(draw: ImageDraw.ImageDraw, centre: float, outer: float) -> None:
    inner = outer * 0.382  # regular pentagram: inner/outer radius = 1/φ²
    points = []
    for i in range(10):
        angle = -math.pi / 2 + i * math.pi / 5
        radius = outer if i % 2 == 0 else inner
        points.append((centre + radius * math.cos(angle), centre + radius * math.sin(angle)))
    draw.polygon(points, fill=RED)


def _arc_text(image: Image.Image, text: str, centre: float, *, radius: float, glyph: float) -> None:
    """Characters along the upper arc, clockwise, centred on 12 o'clock; long names get narrower characters."""
    count = len(text)
    if count == 0:
        return
    glyph_angle = math.degrees(glyph / radius)
    span = min(250.0, max(150.0, count * glyph_angle * 1.25))
    step = span / count
    squeeze = min(1.0, step / (glyph_angle * 1.05))
    font = _font(glyph)
    tile_size = round(glyph * 1.5)
    for i, char in enumerate(text):
        angle = -90 - span / 2 + step * (i + 0.5)  # degrees, screen coordinates (y down)
        tile = Image.new("RGBA", (tile_size, tile_size), (0, 0, 0, 0))
        ImageDraw.Draw(tile).text((tile_size / 2, tile_size / 2), char, font=font, fill=RED, anchor="mm")
        if squeeze < 1.0:
            narrow = tile.resize((max(1, round(tile_size * squeeze)), tile_size), Image.Resampling.LANCZOS)
            tile = Image.new("RGBA", (tile_size, tile_size), (0, 0, 0, 0))
            tile.alpha_composite(narrow, ((tile_size - narrow.width) // 2, 0))
        tile = tile.rotate(-(angle + 90), resample=Image.Resampling.BICUBIC)  # top of the character points outward
        x = centre + radius * math.cos(math.radians(angle))
        y = centre + radius * math.sin(math.radians(angle))
        image.alpha_composite(tile, (round(x - tile_size / 2), round(y - tile_size / 2)))
