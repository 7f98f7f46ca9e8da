"""The client against the fake Immich: auth, permissions, retries, limits, every profile."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from immich_dupes.fake import FakeImmich, Faults
from immich_dupes.fake.measure import max_in_window, max_overlap
from immich_dupes.immich.client import ImmichClient
from immich_dupes.immich.errors import (
    AuthenticationFailed,
    BadRequest,
    NotFound,
    PermissionMissing,
    ServerError,
)

BASE = "http://fake-immich"
PROFILES = ["v1", "v2", "v3"]


def client(fake: FakeImmich, key: str | None = None, **kw: object) -> ImmichClient:
    kw.setdefault("rate_limit", 1000.0)
    kw.setdefault("backoff_base", 0.001)
    return ImmichClient(BASE, key or fake.api_key, transport=fake.transport(), **kw)  # type: ignore[arg-type]


@pytest.fixture(params=PROFILES)
def fake(request: pytest.FixtureRequest) -> FakeImmich:
    return FakeImmich(library="sample", profile=request.param)


@pytest.fixture
async def v3() -> AsyncIterator[FakeImmich]:
    return FakeImmich(library="sample", profile="v3")


async def test_connect_and_list_duplicates_on_every_profile(fake: FakeImmich) -> None:
    async with client(fake) as c:
        info = await c.connect(["duplicate.read"])
        assert info.user.id == fake.user_id
        groups = await c.duplicates()
    assert len(groups) >= 10
    for g in groups:
        assert len(g.assets) >= 2
        for a in g.assets:
            assert a.checksum
            assert a.visibility.value in ("timeline", "archive")
            assert a.dimensions is not None or a.type.value != "IMAGE" or a.exifInfo is not None
    if fake.profile == "v1":
        assert info.version.major == 1
        assert all(not g.suggestedKeepAssetIds for g in groups)
    else:
        assert all(len(g.suggestedKeepAssetIds) == 1 for g in groups)
    videos = [a for g in groups for a in g.assets if a.type.value == "VIDEO"]
    assert videos
    assert all(isinstance(v.duration_ms, int) for v in videos)


async def test_bad_key_is_an_authentication_failure(v3: FakeImmich) -> None:
    async with client(v3, key="not-a-valid-key") as c:
        with pytest.raises(AuthenticationFailed) as e:
            await c.connect()
    assert e.value.status == 401
    assert e.value.message == "Invalid API key"


async def test_missing_permission_is_named_before_anything_else(v3: FakeImmich) -> None:
    limited = v3.add_api_key(v3.user_id, permissions=["asset.read"], name="limited")
    async with client(v3, key=limited) as c:
        with pytest.raises(PermissionMissing) as e:
            await c.connect(["duplicate.read", "asset.read"])
    assert e.value.permission == "duplicate.read"
    assert "duplicate.read" in str(e.value)
    # The only requests sent were the cheap checks, nothing that reads or changes the library.
    paths = [r.path for r in v3.request_log]
    assert "/api/duplicates" not in paths


async def test_route_level_403_carries_the_permission(v3: FakeImmich) -> None:
    limited = v3.add_api_key(v3.user_id, permissions=["asset.read"], name="limited")
    async with client(v3, key=limited) as c:
        with pytest.raises(PermissionMissing) as e:
            await c.duplicates()
    assert e.value.permission == "duplicate.read"
    assert e.value.status == 403


async def test_unknown_and_foreign_assets_are_not_found(v3: FakeImmich) -> None:
    _, other_key = v3.add_user(name="user2")
    async with client(v3) as c:
        groups = await c.duplicates()
        mine = groups[0].assets[0].id
        assert await c.asset_or_none("11111111-1111-4111-8111-111111111111") is None
        with pytest.raises(BadRequest) as e:
            await c.get_asset("not-a-uuid")
        assert e.value.details == ["id: Invalid UUID"]
    async with client(v3, key=other_key) as c:
        with pytest.raises(NotFound, match="Not found or no asset.read access"):
            await c.get_asset(mine)


async def test_validation_error_details_in_both_error_shapes(fake: FakeImmich) -> None:
    async with client(fake) as c:
        await c.connect()
        asset_id = (await c.duplicates())[0].assets[0].id
        with pytest.raises(BadRequest) as e:
            await c.update_asset(asset_id, latitude=123.0, longitude=10.0)
    assert e.value.status == 400
    assert e.value.details
    assert any("latitude" in d for d in e.value.details)


async def test_5xx_and_429_are_retried_until_success(v3: FakeImmich) -> None:
    v3.faults = Faults.parse("5xx=0.5,429=0.3:retry-after=0,seed=7")
    async with client(v3, max_retries=12) as c:
        groups = await c.duplicates()
        for g in groups[:5]:
            await c.get_asset(g.assets[0].id)
    statuses = [r.status for r in v3.request_log]
    assert any(s >= 500 for s in statuses)
    assert 429 in statuses
    assert c.stats.retries == sum(1 for s in statuses if s >= 500 or s == 429)


async def test_persistent_5xx_surfaces_after_the_retries(v3: FakeImmich) -> None:
    v3.faults = Faults.parse("5xx=1.0")
    async with client(v3, max_retries=2) as c:
        with pytest.raises(ServerError):
            await c.duplicates()
    assert len([r for r in v3.request_log if r.path == "/api/duplicates"]) == 3


async def test_rate_limit_is_never_exceeded(v3: FakeImmich) -> None:
    async with client(v3, rate_limit=20.0, concurrency=8) as c:
        ids = [a.id for g in await c.duplicates() for a in g.assets][:30]
        start = len(v3.request_log)
        await asyncio.gather(*(c.get_asset(i) for i in ids))
    records = v3.request_log[start:]
    assert len(records) == len(ids)
    # Upper bound only: a slow machine can only make it slower, never faster.
    assert max_in_window([r.t_start for r in records], 1.0) <= 20


async def test_concurrency_limit_is_honoured(v3: FakeImmich) -> None:
    v3.faults = Faults.parse("latency=80ms")
    async with client(v3, concurrency=3) as c:
        ids = [a.id for g in await c.duplicates() for a in g.assets][:12]
        start = len(v3.request_log)
        await asyncio.gather(*(c.get_asset(i) for i in ids))
    records = v3.request_log[start:]
    assert max_overlap(records) <= 3
