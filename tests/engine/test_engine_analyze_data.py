"""Analyze on server data the plan cannot hold: the group is left out and named, not the run.

One odd asset among 80,000 groups (a 5,000-character file name, a date nobody can read) used
to end analyze with a pydantic traceback. Now that group is left out of the plan with a warning
that names it, Immich keeps it as it is, every other group is analyzed, and the command exits 1
("some items failed"). An answer that is not a list of groups at all still ends the run.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from immich_dupes.analysis.plan import load_plan
from immich_dupes.engine.analyze import NAMED_SKIPS, analyze
from immich_dupes.engine.events import Event
from immich_dupes.fake import FakeImmich, FakeServer
from immich_dupes.immich.client import ImmichClient
from immich_dupes.immich.errors import ImmichError

LONG_NAME = "IMG_" + "x" * 5000 + ".jpg"


class RewriteDuplicates(httpx.AsyncBaseTransport):
    """The fake's transport, with the body of ``GET /api/duplicates`` rewritten by ``edit``."""

    def __init__(self, fake: FakeImmich, edit: Callable[[list[dict[str, Any]]], Any]) -> None:
        self.inner = fake.transport()
        self.edit = edit

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if request.method != "GET" or request.url.path != "/api/duplicates":
            return response
        body = json.loads(await response.aread())
        return httpx.Response(response.status_code, json=self.edit(body))


def run(fake: FakeImmich, edit: Callable[[list[dict[str, Any]]], Any]) -> tuple[Any, list[Event]]:
    events: list[Event] = []

    async def go() -> Any:
        async with ImmichClient("http://fake", fake.api_key, transport=RewriteDuplicates(fake, edit)) as c:
            return await analyze(c, report=events.append)

    return asyncio.run(go()), events


def warnings(events: list[Event]) -> list[Event]:
    return [e for e in events if e.level == "warning"]


def test_a_group_with_an_asset_the_plan_cannot_hold_is_left_out_and_named() -> None:
    fake = FakeImmich(library="sample")
    whole, _ = run(fake, lambda body: body)
    bad_group: dict[str, str] = {}

    def edit(body: list[dict[str, Any]]) -> Any:
        g = body[3]
        g["assets"][1]["originalFileName"] = LONG_NAME
        bad_group.update(id=g["duplicateId"], asset=g["assets"][1]["id"])
        return body

    plan, events = run(fake, edit)
    assert plan.total_groups == whole.total_groups - 1
    assert bad_group["id"] not in {g.duplicate_id for g in plan.groups}
    # Every other group is exactly as it is without the odd one.
    kept = {g.duplicate_id: g for g in whole.groups if g.duplicate_id != bad_group["id"]}
    assert {g.duplicate_id: g for g in plan.groups} == kept
    [warn] = warnings(events)
    assert warn.group_id == bad_group["id"]
    assert f"asset {bad_group['asset']}: file_name: String should have at most 4096" in warn.message
    assert events[-1].data == {"skipped": 1}


def test_groups_that_share_an_asset_are_all_left_out_whatever_their_order() -> None:
    """Immich gives an asset one duplicateId; a plan with one asset in two groups would not
    load. Neither group is kept (which one would be right is not knowable), the rest are."""
    fake = FakeImmich(library="sample")
    whole, _ = run(fake, lambda body: body)
    for first, second in ((2, 5), (5, 2)):
        involved: set[str] = set()

        def edit(
            body: list[dict[str, Any]], first: int = first, second: int = second, involved: set[str] = involved
        ) -> Any:
            body[second]["assets"].append(body[first]["assets"][0])
            involved.update({body[first]["duplicateId"], body[second]["duplicateId"]})
            return body

        plan, events = run(fake, edit)
        assert {w.group_id for w in warnings(events)} == involved
        assert all("shares the id" in w.message for w in warnings(events))
        assert {g.duplicate_id: g for g in plan.groups} == {
            g.duplicate_id: g for g in whole.groups if g.duplicate_id not in involved
        }


def test_a_group_whose_dates_no_calendar_holds_is_left_out() -> None:
    """Year 1 (an unset camera clock) in a zone behind UTC: the capture-time conflict cannot
    even be written as local time. That group is left out; the run goes on."""
    fake = FakeImmich(library="sample")

    def edit(body: list[dict[str, Any]]) -> Any:
        a, b = body[1]["assets"][:2]
        a["exifInfo"].update(dateTimeOriginal="0001-01-01T00:00:00.000Z", timeZone="UTC-5")
        b["exifInfo"].update(dateTimeOriginal="2020-01-01T00:00:00.000Z", timeZone="UTC-5")
        return body

    plan, events = run(fake, edit)
    [warn] = warnings(events)
    assert warn.group_id not in {g.duplicate_id for g in plan.groups}
    assert plan.total_groups == len(fake.groups()) - 1


def test_a_group_id_that_is_no_uuid_is_left_out() -> None:
    fake = FakeImmich(library="sample")

    def edit(body: list[dict[str, Any]]) -> Any:
        body[0]["duplicateId"] = "not-a-uuid"
        return body

    plan, events = run(fake, edit)
    [warn] = warnings(events)
    assert warn.group_id == "not-a-uuid"
    assert "duplicate_id" in warn.message
    assert plan.total_groups == len(fake.groups()) - 1


def test_when_every_group_is_unreadable_the_first_twenty_are_named_and_all_counted() -> None:
    fake = FakeImmich(library="synthetic:30")

    def edit(body: list[dict[str, Any]]) -> Any:
        for g in body:
            g["assets"][0]["exifInfo"]["dateTimeOriginal"] = "yesterday"
        return body

    plan, events = run(fake, edit)
    assert plan.total_groups == 0
    named = [e for e in warnings(events) if e.group_id]
    assert len(named) == NAMED_SKIPS
    assert all("exifInfo.dateTimeOriginal: " in e.message for e in named)
    [more] = [e for e in warnings(events) if not e.group_id]
    assert f"only the first {NAMED_SKIPS} are named" in more.message
    assert events[-1].data == {"skipped": 30}


def test_exactly_twenty_left_out_groups_are_all_named() -> None:
    fake = FakeImmich(library="synthetic:25")

    def edit(body: list[dict[str, Any]]) -> Any:
        for g in body[:NAMED_SKIPS]:
            g["assets"][0]["originalFileName"] = LONG_NAME
        return body

    plan, events = run(fake, edit)
    assert len(warnings(events)) == NAMED_SKIPS
    assert all(e.group_id for e in warnings(events))
    assert plan.total_groups == 5


@pytest.mark.parametrize(
    "edit",
    [
        lambda body: [*body, "a string"],
        lambda body: [*body, {"duplicateId": "x"}],  # no assets
        lambda body: [*body, {"duplicateId": "x", "assets": [1, 2]}],
    ],
)
def test_an_answer_that_is_not_a_list_of_groups_ends_the_run(edit: Any) -> None:
    fake = FakeImmich(library="sample")
    assert gc.isenabled()
    with pytest.raises(ImmichError):
        run(fake, edit)
    assert gc.isenabled()  # the collector paused for the build is back on


def test_cli_leaves_the_group_out_writes_the_rest_and_exits_1(tmp_path: Path) -> None:
    fake = FakeImmich(library="sample")
    victim = fake.groups()[0]
    # The fake's own record of one asset, given a name no plan can hold (the fake's store
    # has no API for it; Immich would accept such a file name from a client).
    store = fake._store
    a = store.assets[victim["assets"][0]["id"]]
    a.file_name = LONG_NAME
    a.cache.clear()
    store.changed()
    out = tmp_path / "plan.json"
    with FakeServer(fake, port=0) as srv:
        env = {k: v for k, v in os.environ.items() if not k.startswith("IMMICH_")}
        r = subprocess.run(
            [sys.executable, "-m", "immich_dupes", "analyze", "-o", str(out), "-u", srv.url, "-a", fake.api_key],
            capture_output=True, text=True, env=env, timeout=120, stdin=subprocess.DEVNULL,
        )
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    assert f"group {victim['duplicateId']} left out of the plan: asset {a.id}: file_name" in r.stderr
    assert "left out: 1 group the plan cannot hold" in r.stdout
    plan = load_plan(out)
    assert plan.total_groups == len(fake.groups()) - 1
    assert victim["duplicateId"] not in {g.duplicate_id for g in plan.groups}


def test_progress_names_the_groups_read_and_the_decisions_after_the_download() -> None:
    """At 80,000 groups the decisions take seconds: they report progress of their own instead
    of leaving the last download line standing."""
    fake = FakeImmich(library="synthetic:2500")
    plan, events = run(fake, lambda body: body)
    downloads = [e for e in events if e.phase == "download"]
    assert downloads[-1].message == "2500 groups"
    deciding = [e for e in events if e.phase == "analyze" and e.message == "choosing winners"]
    assert [(e.done, e.total) for e in deciding] == [(0, 2500), (1000, 2500), (2000, 2500)]
    assert events.index(deciding[0]) > events.index(downloads[-1])
    assert events[-1].phase == "analyze"
    assert (events[-1].done, events[-1].total) == (2500, 2500)
