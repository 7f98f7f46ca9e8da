"""The one place that knows how pictures reach the terminal.

Maps the configured protocol (``auto``, ``kitty``, ``sixel``, ``halfcell``, ``unicode``, ``none``)
to a textual-image widget class. textual-image asks the terminal what it supports when it is
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
    classes: dict[str, type[Widget]] = {
        "auto": widget_module.Image,
        "kitty": widget_module.TGPImage,
        "sixel": widget_module.SixelImage,
        "halfcell": widget_module.HalfcellImage,
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
        "UnicodeImage": "unicode",
        "AutoImage": "auto",
    }.get(name, name)
