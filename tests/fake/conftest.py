"""Fixtures for the fake-Immich tests."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from fake_support import client

from immich_dupes.fake import FakeImmich


@pytest.fixture
def fake() -> FakeImmich:
    return FakeImmich(library="sample", profile="v3")


@pytest.fixture
def api(fake: FakeImmich) -> Iterator[httpx.Client]:
    with client(fake) as c:
        yield c
