"""Poster images for the posters tests (importable; conftest modules are not)."""
from __future__ import annotations

import io


def jpeg(color=(200, 30, 30), size=(60, 90)) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="JPEG")
    return buffer.getvalue()


def bomb_png() -> bytes:
    """A small file that decodes to 50 million pixels (past the 40 M limit)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("1", (10_000, 5_000)).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()
