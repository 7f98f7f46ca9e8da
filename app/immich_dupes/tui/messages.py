"""Typed messages: how workers report back to the UI."""

from __future__ import annotations

from typing import Any

from PIL import Image as PILImage
from textual.message import Message

from immich_dupes.engine.events import Event


class ThumbnailReady(Message):
    """A picture (or the reason there is none) for one asset of the shown group."""

    def __init__(
        self, asset_id: str, size: str, image: PILImage.Image | None, error: str | None = None
    ) -> None:
        super().__init__()
        self.asset_id = asset_id
        self.size = size
        self.image = image
        self.error = error


class ServerState(Message):
    """The server connection changed: online with pictures, or offline with a reason."""

    def __init__(self, online: bool, notice: str, reason: str = "") -> None:
        super().__init__()
        self.online = online
        self.notice = notice
        """The banner: what happened and what still works."""
        self.reason = reason
        """A few words for where a picture would be ('offline', 'bad API key')."""


class EngineProgress(Message):
    """One engine Event. Plain progress of the same phase coalesces; warnings never do."""

    def __init__(self, event: Event) -> None:
        super().__init__()
        self.event = event

    def can_replace(self, message: Message) -> bool:
        return (
            isinstance(message, EngineProgress)
            and message.event.phase == self.event.phase
            and message.event.level == "info"
            and self.event.level == "info"
            and not message.event.message
        )


class JobFinished(Message):
    """An engine job ended: with its report, cancelled, or with an error."""

    def __init__(self, result: Any, error: BaseException | None, cancelled: bool) -> None:
        super().__init__()
        self.result = result
        self.error = error
        self.cancelled = cancelled
