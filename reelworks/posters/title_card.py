"""The title on a rendered poster, set with PIL (diffusion models draw letters badly).

The font is DejaVu Sans Bold from matplotlib's own data (a core dependency), so every image
of the project has it without a system font package.
"""
from __future__ import annotations

import functools
import textwrap
from pathlib import Path

from reelworks.errors import ReelworksError

# The band across the poster's lower part that holds the title, as fractions of the height.
BOX_TOP = 0.76
BOX_BOTTOM = 0.97
MIN_WIDTH = 384  # tiny renders are upscaled to this width first, so the title stays legible


@functools.lru_cache(maxsize=None)
def font_path() -> Path:
    import matplotlib

    path = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans-Bold.ttf"
    if not path.is_file():
        raise ReelworksError(f"the poster font is missing: {path} (matplotlib's DejaVu fonts)")
    return path


def title_box(width: int, height: int) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of the title band on a poster of this size."""
    return 0, round(height * BOX_TOP), width, round(height * BOX_BOTTOM)


def set_title(image, title: str, *, min_width: int = MIN_WIDTH):
    """A copy of `image` (upscaled to `min_width` if narrower) with `title` on a dark band:
    the largest font size at which the title fits in at most three lines."""
    from PIL import Image, ImageDraw, ImageFont

    title = " ".join(title.split()) or "Untitled"
    poster = image.convert("RGB")
    if poster.width < min_width:
        scale = min_width / poster.width
        poster = poster.resize((min_width, round(poster.height * scale)), Image.LANCZOS)
    left, top, right, bottom = title_box(*poster.size)
    band = Image.new("RGBA", poster.size, (0, 0, 0, 0))
    ImageDraw.Draw(band).rectangle((left, top, right, bottom), fill=(8, 8, 12, 185))
    poster = Image.alpha_composite(poster.convert("RGBA"), band)
    draw = ImageDraw.Draw(poster)
    margin = max(4, poster.width // 24)
    box_w, box_h = right - left - 2 * margin, bottom - top - 2 * margin // 2
    for size in range(max(10, box_h // 2), 7, -1):
        font = ImageFont.truetype(str(font_path()), size)
        lines = _wrap(draw, title, font, box_w)
        if lines is None or len(lines) > 3:
            continue
        spacing = size // 5
        text = "\n".join(lines)
        x0, y0, x1, y1 = draw.multiline_textbbox((0, 0), text, font=font, spacing=spacing, align="center")
        if y1 - y0 <= box_h:
            break
    else:  # even the smallest size does not fit: cut the title
        font = ImageFont.truetype(str(font_path()), 8)
        spacing = 1
        text = "\n".join(textwrap.wrap(title, max(4, box_w // 6))[:3])
        x0, y0, x1, y1 = draw.multiline_textbbox((0, 0), text, font=font, spacing=spacing, align="center")
    x = left + (right - left - (x1 - x0)) / 2 - x0
    y = top + (bottom - top - (y1 - y0)) / 2 - y0
    draw.multiline_text((x + 1, y + 1), text, font=font, fill=(0, 0, 0), spacing=spacing, align="center")
    draw.multiline_text((x, y), text, font=font, fill=(250, 244, 228), spacing=spacing, align="center")
    return poster.convert("RGB")


def _wrap(draw, text: str, font, width: int) -> list[str] | None:
    """Greedy word wrap to `width` pixels; None when one word alone is too wide."""
    lines: list[str] = []
    for word in text.split():
        if draw.textlength(word, font=font) > width:
            return None
        if lines and draw.textlength(f"{lines[-1]} {word}", font=font) <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return lines
