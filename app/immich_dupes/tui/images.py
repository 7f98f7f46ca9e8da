"""The one place that knows how pictures reach the terminal.

Maps the configured protocol (``auto``, ``kitty``, ``sixel``, ``halfcell``, ``unicode``, ``none``)
to a textual-image widget class (halfcell: :class:`~immich_dupes.tui.widgets.picture.HalfcellPicture`,
which caches what it draws). textual-image asks the terminal what it supports when it is
first imported, which is impossible once Textual owns the terminal: call :func:`prepare`
before the app runs. Widgets are fed PIL images (decoded in workers), never raw bytes.
"""

from __future__ import annotations

from typing import Any

from textual.widget import Widget

PROTOCOLS = ("auto", "kitty", "sixel", "halfcell", "unicode", "none")


class ImageProtocolError(ValueError):
    pass


def prepare(protocol: str) -> type[Widget] | None:
    """Import textual-image (querying the terminal once) and return the widget class to use.

    ``none`` returns None: no pictures, metadata only.
    """
    if protocol not in PROTOCOLS:
        raise ImageProtocolError(
            f"unknown image protocol {protocol!r} (choose from {', '.join(PROTOCOLS)})"
        )
    if protocol == "none":
        return None
    widget_module: Any = __import__("textual_image.widget", fromlist=["Image"])
    renderable_module: Any = __import__("textual_image.renderable", fromlist=["Image"])
    # after textual_image.widget: that import is what asks the terminal (see picture.py)
    from immich_dupes.tui.widgets.picture import HalfcellPicture

    auto: type[Widget] = widget_module.Image
    if renderable_module.Image is renderable_module.HalfcellImage:
        auto = HalfcellPicture  # same cells, drawn once per picture and size
    classes: dict[str, type[Widget]] = {
        "auto": auto,
        "kitty": widget_module.TGPImage,
        "sixel": widget_module.SixelImage,
        "halfcell": HalfcellPicture,
        "unicode": widget_module.UnicodeImage,
    }
    return classes[protocol]


def describe(cls: type[Widget] | None) -> str:
    """A short name for the help screen: which protocol ``auto`` picked."""
    if cls is None:
        return "none"
    name = cls.__name__
    return {
        "TGPImage": "kitty",
        "SixelImage": "sixel",
        "HalfcellImage": "halfcell",
        "HalfcellPicture": "halfcell",
        "UnicodeImage": "unicode",
        "AutoImage": "auto",
    }.get(name, name)
