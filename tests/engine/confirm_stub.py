"""A stand-in for the terminal question of ``immich-dupes execute`` (fixture ``asked``, in
conftest): records each question and answers no."""

from __future__ import annotations

from typing import Any


class Asked:
    """Stands in for the terminal question: records it and answers no."""

    def __init__(self) -> None:
        self.questions: list[str] = []

    def __call__(self, question: str, assume_yes: bool, *a: Any) -> bool:
        self.questions.append(question)
        return False
