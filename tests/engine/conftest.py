"""Shared fixtures for engine tests: clients on the fake Immich, plans, request hooks.

Kept generic on purpose (execute, verify and restore tests all use them).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
from confirm_stub import Asked

import immich_dupes.commands.execute as execute_command
from immich_dupes.analysis import decide
from immich_dupes.analysis.plan import Plan
from immich_dupes.engine.analyze import analyze
from immich_dupes.fake import FakeImmich
from immich_dupes.fake.http import ApiRequest
from immich_dupes.immich.client import ImmichClient

FAKE_URL = "http://fake-immich"
READ_ONLY_POSTS = ("/api/search/metadata", "/api/assets/bulk-upload-check", "/api/download/info")


def is_changing(method: str, path: str) -> bool:
    """Would this request change the server? (Some POSTs are searches.)"""
    if method in ("GET", "HEAD", "OPTIONS"):
        return False
    return not (method == "POST" and path in READ_ONLY_POSTS)


ClientFactory = Callable[..., ImmichClient]


@pytest.fixture
async def fake_client() -> AsyncIterator[ClientFactory]:
    """``fake_client(fake, key=None, rate_limit=..., concurrency=...)``: a client on the in-process transport.

    Fast limits and short backoffs so fault tests do not sleep; closed after the test.
    """
    made: list[ImmichClient] = []

    def make(
        fake: FakeImmich,
        *,
        key: str | None = None,
        rate_limit: float = 10_000.0,
        concurrency: int = 8,
        max_retries: int = 2,
    ) -> ImmichClient:
        c = ImmichClient(
            FAKE_URL,
            key or fake.api_key,
            transport=fake.transport(),
            rate_limit=rate_limit,
            concurrency=concurrency,
            max_retries=max_retries,
            backoff_base=0.001,
            backoff_cap=0.01,
        )
        made.append(c)
        return c

    yield make
    for c in made:
        await c.aclose()


def accept_all(plan: Plan) -> Plan:
    """Every group reviewed and accepted as analyze decided it (external deletes stay off)."""
    plan.groups = [decide.accept(g) for g in plan.groups]
    plan.refresh_counts()
    return plan


@pytest.fixture
def make_plan(fake_client: ClientFactory) -> Callable[..., Awaitable[Plan]]:
    """``await make_plan(fake, accept=True)``: analyze the fake's library (optionally accept all)."""

    async def make(fake: FakeImmich, *, accept: bool = True, key: str | None = None) -> Plan:
        plan = await analyze(fake_client(fake, key=key))
        return accept_all(plan) if accept else plan

    return make


RequestHook = Callable[[ApiRequest], None]


@pytest.fixture
def on_request() -> Iterator[Callable[[FakeImmich, RequestHook], None]]:
    """``on_request(fake, hook)``: call ``hook(request)`` before the fake processes each request.

    Works for the in-process transport and FakeServer alike (both go through the fake's
    ``_respond``). The hook runs before the request changes anything, so it can check
    preconditions of a DELETE, or kill a client process at a chosen request.
    """
    installed: list[FakeImmich] = []

    def install(fake: FakeImmich, hook: RequestHook) -> None:
        original = fake._respond

        def wrapped(req: ApiRequest, decision: Any) -> Any:
            hook(req)
            return original(req, decision)

        fake._respond = wrapped  # type: ignore[method-assign]
        installed.append(fake)

    yield install
    for fake in installed:
        fake.__dict__.pop("_respond", None)


@pytest.fixture
def asked(monkeypatch: pytest.MonkeyPatch) -> Asked:
    """A terminal to ask on, whose answer is no (the questions are recorded)."""
    a = Asked()
    monkeypatch.setattr(execute_command, "confirm", a)
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    return a
