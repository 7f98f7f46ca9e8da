"""``cache_responses=False``: the fake builds every answer anew (as a real server), same bytes."""

from __future__ import annotations

import httpx

from immich_dupes.fake import FakeImmich


async def _get(fake: FakeImmich, path: str) -> bytes:
    async with httpx.AsyncClient(transport=fake.transport(), base_url="http://fake-immich") as c:
        r = await c.get(path, headers={"x-api-key": fake.api_key})
        r.raise_for_status()
        return r.content


async def test_uncached_answers_are_the_same_bytes_and_nothing_is_kept() -> None:
    cached = FakeImmich(library="synthetic:30")
    fresh = FakeImmich(library="synthetic:30", cache_responses=False)
    body = await _get(fresh, "/api/duplicates")
    assert body == await _get(cached, "/api/duplicates")
    assert body == await _get(fresh, "/api/duplicates")
    some = next(iter(fresh._store.assets))
    assert await _get(fresh, f"/api/assets/{some}") == await _get(cached, f"/api/assets/{some}")
    # The cached fake kept serialized answers; the uncached one kept none.
    assert cached._store._dup_cache
    assert not fresh._store._dup_cache
    assert not any(a.cache for a in fresh._store.assets.values())


async def test_uncached_answers_follow_changes() -> None:
    fresh = FakeImmich(library="synthetic:5", cache_responses=False)
    before = await _get(fresh, "/api/duplicates")
    gone = fresh.groups()[0]["assets"][0]["id"]
    assert gone.encode() in before
    fresh.trash_asset(gone)
    after = await _get(fresh, "/api/duplicates")
    assert gone.encode() not in after
