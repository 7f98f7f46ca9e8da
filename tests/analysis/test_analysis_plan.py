"""The plan file: validation with the path of the bad field, atomic writes, the recorded server."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from immich_dupes.analysis.decide import build_group, plan_assets, set_action
from immich_dupes.analysis.plan import (
    Action,
    Plan,
    PlanError,
    PlanSettings,
    ReviewReason,
    load_plan,
    parse_plan,
    plan_json_schema,
    save_plan,
)
from immich_dupes.engine.execute import group_sha256, plan_sha256

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "recorded"


def recorded_plan() -> Plan:
    raw = json.loads((FIXTURES / "duplicates-admin.json").read_text())
    groups = []
    for g in raw:
        groups.append(
            build_group(g["duplicateId"], plan_assets(g["assets"]), PlanSettings(), g["suggestedKeepAssetIds"])
        )
    plan = Plan(
        created_at=datetime(2026, 11, 23, tzinfo=UTC),
        server_url="http://127.0.0.1:2283/api",
        user_id="65163ffa-970d-43e8-bd95-0c554b301938",
        total_groups=0,
        total_assets=0,
        needs_review_count=0,
        groups=groups,
    )
    plan.refresh_counts()
    return plan


def by_name(plan: Plan, fragment: str) -> Any:
    for g in plan.groups:
        if any(fragment in a.file_name for a in g.assets):
            return g
    raise AssertionError(fragment)


def test_recorded_server_plan_is_what_a_careful_person_would_choose() -> None:
    plan = recorded_plan()
    assert plan.total_groups == 12
    assert plan.total_assets == 25

    s01 = by_name(plan, "s01_")
    assert s01.winner_asset.file_name == "s01_large_nogps.jpg"  # 4000×3000 beats 1600×1200 with GPS
    assert s01.winner_reason == "most pixels: 4000×3000 vs 1600×1200"
    assert (s01.consolidated.latitude, s01.consolidated.longitude) == (48.8566, 2.3522)  # GPS carried
    assert not s01.needs_review

    s02 = by_name(plan, "s02_")  # Munich vs Berlin, ~500 km
    assert s02.needs_review
    assert any(c.type == "gps" for c in s02.conflicts)

    s03 = by_name(plan, "s03_")  # +02:00 vs +00:00
    assert s03.needs_review
    assert any(c.type == "timezone" for c in s03.conflicts)

    s10 = by_name(plan, "s10_")
    assert ReviewReason.EXTERNAL_LIBRARY in s10.review_reasons
    assert s10.winner_asset.file_name == "s10_upload_large.jpg"

    s04 = by_name(plan, "s04_")
    assert s04.consolidated.description == "Harbour at dawn - only the small copy has this caption"
    s11 = by_name(plan, "s11_")
    assert s11.consolidated.is_favorite is True
    s12 = by_name(plan, "s12_")
    assert s12.consolidated.rating == 4
    assert len(s12.consolidated.tag_ids) == 1
    s13 = by_name(plan, "s13_")
    assert s13.consolidated.visibility == "archive"
    s09 = by_name(plan, "s09_")
    assert s09.winner_asset.file_name == "s09_video_720p.mp4"


def test_plan_roundtrip_atomic_and_private(tmp_path: Path) -> None:
    plan = recorded_plan()
    out = tmp_path / "plan.json"
    save_plan(plan, out)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["plan.json"]  # no temp file left behind
    again = load_plan(out)
    assert again == plan
    data = json.loads(out.read_text())
    # The original tool's keys, for its jq recipes.
    for key in ("total_groups", "total_assets", "needs_review_count", "groups", "schema_version"):
        assert key in data
    g = data["groups"][0]
    for key in ("duplicate_id", "winner", "losers", "conflicts", "needs_review"):
        assert key in g


def _mutate(plan: Plan, fn: Any) -> str:
    data = json.loads(plan.model_dump_json())
    fn(data)
    return json.dumps(data)


@pytest.mark.parametrize(
    ("mutation", "expected"),
    [
        (lambda d: d.update(schema_version=99), "schema_version 99 is not supported"),
        (lambda d: d["groups"][0].update(winner="not-a-uuid"), "groups[0].winner"),
        (lambda d: d["groups"][0]["assets"][0].update(latitude=123.0), "groups[0].assets[0].latitude"),
        (lambda d: d["groups"][1].update(duplicate_id=d["groups"][0]["duplicate_id"]), "appears twice"),
        (lambda d: d["groups"][0]["losers"].append(d["groups"][0]["winner"]), "also a loser"),
        (lambda d: d["groups"][0]["assets"][0].update(description="x" * 70_000), "description"),
        (lambda d: d["groups"][0].update(action="explode"), "groups[0].action"),
        (lambda d: d.update(total_groups="many"), "total_groups"),
        (lambda d: d.update(extra_key=1), "extra_key"),
    ],
)
def test_invalid_plans_name_the_bad_field(mutation: Any, expected: str) -> None:
    text = _mutate(recorded_plan(), mutation)
    with pytest.raises(PlanError) as e:
        parse_plan(text, "plan.json")
    assert expected in str(e.value)
    assert str(e.value).startswith("plan.json: ")
    assert "\n" not in str(e.value)


def test_asset_in_two_groups_is_refused() -> None:
    def move(d: dict[str, Any]) -> None:
        d["groups"][1]["assets"].append(d["groups"][0]["assets"][1])
        d["groups"][1]["losers"].append(d["groups"][0]["assets"][1]["id"])

    with pytest.raises(PlanError, match="also in group"):
        parse_plan(_mutate(recorded_plan(), move))


def test_nan_coordinates_and_truncated_json_are_refused() -> None:
    text = _mutate(recorded_plan(), lambda d: d["groups"][0]["assets"][0].update(latitude=0.0))
    text = text.replace('"latitude": 0.0', '"latitude": NaN', 1)
    assert 'NaN' in text
    with pytest.raises(PlanError, match="latitude"):
        parse_plan(text)
    with pytest.raises(PlanError, match="not valid JSON"):
        parse_plan(recorded_plan().model_dump_json()[:500])


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(PlanError, match="no such file"):
        load_plan(tmp_path / "nope.json")
    with pytest.raises(PlanError, match="is a directory"):
        load_plan(tmp_path)


def test_json_schema_is_published() -> None:
    schema = plan_json_schema()
    assert schema["title"] == "Plan"
    assert "groups" in schema["properties"]
    assert "GroupPlan" in schema["$defs"]


def test_the_fast_and_the_explaining_load_give_the_same_plan(tmp_path: Path) -> None:
    """load_plan goes straight from JSON to models; the path that explains errors must agree."""
    from immich_dupes.analysis.plan import _parse_plan_explained

    plan = recorded_plan()
    path = tmp_path / "plan.json"
    save_plan(plan, path)
    fast = load_plan(path)
    explained = _parse_plan_explained(path.read_bytes(), str(path))
    assert fast.model_dump() == explained.model_dump() == plan.model_dump()


def test_a_plan_without_schema_version_is_refused_by_both_paths(tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    save_plan(recorded_plan(), path)
    body = json.loads(path.read_bytes())
    del body["schema_version"]
    path.write_text(json.dumps(body))
    with pytest.raises(PlanError, match="schema_version"):
        load_plan(path)


def test_load_leaves_the_garbage_collector_as_it_found_it(tmp_path: Path) -> None:
    import gc

    path = tmp_path / "plan.json"
    save_plan(recorded_plan(), path)
    assert gc.isenabled()
    load_plan(path)
    assert gc.isenabled()
    path.write_text("{not json")
    with pytest.raises(PlanError):
        load_plan(path)
    assert gc.isenabled()


# --------------------------------------------------------------------------- the file's form
# Every group key, each asset without the fields at their default. Loading fills the defaults
# in again, so the models, and the hashes that bind a backup folder to a plan (computed from the
# models), are what they were with every field written; plans written with every field (before
# this form) still load to equal plans.


def full_form(plan: Plan) -> str:
    """The plan with every field written: what save_plan wrote before (and older versions)."""
    return plan.model_dump_json()


def test_assets_leave_out_their_defaults_and_groups_keep_every_key(tmp_path: Path) -> None:
    plan = recorded_plan()
    save_plan(plan, tmp_path / "p.json")
    data = json.loads((tmp_path / "p.json").read_text())
    group_keys = set(type(plan.groups[0]).model_fields)
    for g in data["groups"]:
        assert set(g) == group_keys  # needs_review, conflicts, reviewed...: always there (jq)
        assert next(iter(g)) == "duplicate_id"
    assets: list[dict[str, Any]] = [a for g in data["groups"] for a in g["assets"]]
    assert all("is_favorite" not in a for a in assets if not a.get("is_favorite", False))
    assert any(a.get("is_favorite") is True for a in assets)  # a value that is not the default stays
    assert all(a.get("tags", [None]) != [] and a.get("description", None) != "" for a in assets)
    assert all({"id", "file_name"} <= set(a) for a in assets)  # required fields always
    assert len((tmp_path / "p.json").read_bytes()) < 0.85 * len(full_form(plan).encode())


def test_the_file_loads_to_an_equal_plan_with_the_same_hashes(tmp_path: Path) -> None:
    plan = recorded_plan()
    plan.groups[2] = set_action(plan.groups[2], Action.KEEP_ALL)  # a reviewed, edited group too
    save_plan(plan, tmp_path / "p.json")
    loaded = load_plan(tmp_path / "p.json")
    assert loaded == plan
    assert loaded.model_dump_json() == plan.model_dump_json()
    assert plan_sha256(loaded) == plan_sha256(plan)
    assert [group_sha256(g) for g in loaded.groups] == [group_sha256(g) for g in plan.groups]


def test_a_plan_with_every_field_written_still_loads_and_hashes_the_same(tmp_path: Path) -> None:
    plan = recorded_plan()
    (tmp_path / "old.json").write_text(full_form(plan))
    old = load_plan(tmp_path / "old.json")
    assert old == plan
    save_plan(old, tmp_path / "new.json")  # re-saved (e.g. by the review app): the new form
    new = load_plan(tmp_path / "new.json")
    assert plan_sha256(new) == plan_sha256(old)
    assert [group_sha256(g) for g in new.groups] == [group_sha256(g) for g in old.groups]


def test_the_file_is_valid_against_the_published_schema(tmp_path: Path) -> None:
    plan = recorded_plan()
    save_plan(plan, tmp_path / "p.json")
    jsonschema.validate(json.loads((tmp_path / "p.json").read_text()), plan_json_schema())
