"""Regenerate the bad-plan corpus in tests/safety/bad_plans/: ``python tests/safety/make_bad_plans.py``.

Every file starts from one valid plan (three groups of the fake's sample library, fixed
timestamps) and is broken in one way. ``CASES`` maps each file to what the refusal must say
(a fragment of the one-line error), or to ``ACCEPT`` for the files a plan must take as they
are (hostile file names: they are only data in a plan; execute sanitises what it writes).
``test_safety_bad_input.py`` checks the files on disk equal what this script builds.

The 10 MB description is not committed: the test builds it with ``ten_mb_description()``.
"""

from __future__ import annotations

import asyncio
import copy
import json
import random
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "bad_plans"
ACCEPT = "ACCEPT"
OTHER_SERVER = "http://other-immich.example/api"
OTHER_USER = "0badc0de-0000-4000-8000-00000000beef"
KEEP = ("s11_large_plain.jpg", "s15_plain_copy.jpg", "s05_a_large_dateonly.jpg")
"""Winners of the groups the base plan keeps: albums and a favorite, a live photo, three copies."""

Plan = dict[str, Any]


def base_plan() -> Plan:
    """The valid plan every case starts from (deterministic: ids from the fake, fixed times)."""
    from immich_dupes.analysis import decide
    from immich_dupes.engine.analyze import analyze
    from immich_dupes.fake import FakeImmich
    from immich_dupes.immich.client import ImmichClient

    fake = FakeImmich(library="sample")

    async def go() -> Any:
        async with ImmichClient(
            "http://fake-immich", fake.api_key, transport=fake.transport(), rate_limit=10_000
        ) as c:
            return await analyze(c)

    plan = asyncio.run(go())
    plan.groups = [decide.accept(g) for g in plan.groups if g.winner_asset.file_name in KEEP]
    plan.groups.sort(key=lambda g: KEEP.index(g.winner_asset.file_name))
    plan.created_at = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    plan.tool_version = "0.1.0"
    plan.refresh_counts()
    data: Plan = json.loads(plan.model_dump_json())
    return data


def _dump(plan: Any) -> bytes:
    return (json.dumps(plan, indent=1, ensure_ascii=False) + "\n").encode("utf-8")


def _edit(fn: Callable[[Plan], Any]) -> Callable[[Plan], bytes]:
    def build(base: Plan) -> bytes:
        p = copy.deepcopy(base)
        out = fn(p)
        return _dump(p if out is None else out)

    return build


def _raw(fn: Callable[[bytes], bytes]) -> Callable[[Plan], bytes]:
    return lambda base: fn(_dump(base))


def _set(path: str, value: Any) -> Callable[[Plan], bytes]:
    """Set ``a.b[0].c`` to ``value``."""

    def fn(p: Plan) -> None:
        keys: list[Any] = []
        for part in path.replace("]", "").split("."):
            name, *idx = part.split("[")
            keys.append(name)
            keys.extend(int(i) for i in idx)
        target: Any = p
        for k in keys[:-1]:
            target = target[k]
        target[keys[-1]] = value

    return _edit(fn)


def _nan_token(field: str, token: str) -> Callable[[Plan], bytes]:
    """A bare ``NaN``/``Infinity`` token, which Python's json reads (and JSON forbids)."""

    def build(base: Plan) -> bytes:
        p = copy.deepcopy(base)
        p["groups"][0]["assets"][1][field] = 12.5
        text = json.dumps(p, indent=1)
        return (text.replace(f'"{field}": 12.5', f'"{field}": {token}', 1) + "\n").encode()

    return build


def _asset_in_two_groups(p: Plan) -> None:
    p["groups"][1]["assets"].append(copy.deepcopy(p["groups"][0]["assets"][1]))
    p["groups"][1]["losers"].append(p["groups"][0]["assets"][1]["id"])


def _winner_is_loser(p: Plan) -> None:
    g = p["groups"][0]
    g["losers"].append(g["winner"])


def _winner_not_in_group(p: Plan) -> None:
    p["groups"][0]["winner"] = p["groups"][1]["winner"]


def _neither_kept_nor_loser(p: Plan) -> None:
    g = p["groups"][2]
    g["losers"] = g["losers"][:1]


def _asset_twice(p: Plan) -> None:
    g = p["groups"][0]
    g["assets"].append(copy.deepcopy(g["assets"][0]))


def _one_asset(p: Plan) -> None:
    g = p["groups"][0]
    g["assets"] = [a for a in g["assets"] if a["id"] == g["winner"]]
    g["losers"] = []


def _sources_outside(p: Plan) -> None:
    p["groups"][0]["sources"]["gps"] = p["groups"][1]["winner"]


def _deep(base: Plan) -> bytes:
    depth = 100_000
    return b'{"schema_version": 1, "groups": ' + b"[" * depth + b"]" * depth + b"}\n"


def _garbage(base: Plan) -> bytes:
    return random.Random(5).randbytes(4096)


def _control_char_raw(base: Plan) -> bytes:
    # An unescaped control character inside a JSON string is not JSON.
    return _dump(base).replace(b'"file_name": "s11', b'"file_name": "\x07s11', 1)


def _bad_utf8(base: Plan) -> bytes:
    return _dump(base).replace(b"s11_large_plain", b"s11_\xff\xfe_plain", 1)


def _hostile(name: str) -> Callable[[Plan], bytes]:
    def fn(p: Plan) -> None:
        g = p["groups"][0]
        loser = next(a for a in g["assets"] if a["id"] in g["losers"])
        loser["file_name"] = name
        loser["original_path"] = "/data/upload/" + name

    return _edit(fn)


CASES: dict[str, tuple[Callable[[Plan], bytes], str]] = {
    # not JSON at all
    "empty.json": (lambda base: b"", "not valid JSON"),
    "whitespace_only.json": (lambda base: b"  \n\t\n", "not valid JSON"),
    "truncated_half.json": (_raw(lambda b: b[: len(b) // 2]), "not valid JSON"),
    "truncated_last_byte.json": (_raw(lambda b: b.rstrip()[:-1]), "not valid JSON"),
    "binary_garbage.json": (_garbage, "not valid JSON"),
    "invalid_utf8.json": (_bad_utf8, "not valid JSON"),
    "raw_control_character.json": (_control_char_raw, "not valid JSON"),
    "deeply_nested.json": (_deep, "nested too deeply"),
    # JSON, but not a plan object
    "json_array.json": (_edit(lambda p: [p]), "a plan is a JSON object, found list"),
    "json_string.json": (lambda base: b'"plan"\n', "a plan is a JSON object, found str"),
    "json_number.json": (lambda base: b"42\n", "a plan is a JSON object, found int"),
    "json_null.json": (lambda base: b"null\n", "a plan is a JSON object"),
    # versions
    "schema_version_2.json": (_set("schema_version", 2), "schema_version 2 is not supported"),
    "schema_version_missing.json": (_edit(lambda p: p.pop("schema_version") and None), "schema_version None"),
    "schema_version_string.json": (_set("schema_version", "1"), "schema_version '1' is not supported"),
    # wrong types and unknown fields
    "unknown_top_level_field.json": (_set("delete_everything", True), "delete_everything: Extra inputs"),
    "total_groups_not_a_number.json": (_set("total_groups", "many"), "total_groups"),
    "total_groups_negative.json": (_set("total_groups", -1), "total_groups"),
    "total_groups_huge_float.json": (_raw(lambda b: b.replace(b'"total_groups": 3', b'"total_groups": 1e400', 1)), "total_groups"),
    "groups_not_a_list.json": (_set("groups", {"a": 1}), "groups"),
    "group_is_a_string.json": (_set("groups[0]", "resolve everything"), "groups[0]"),
    "created_at_not_a_date.json": (_set("created_at", "yesterday"), "created_at"),
    "unknown_action.json": (_set("groups[0].action", "delete_everything"), "groups[0].action"),
    "favorite_is_a_list.json": (_set("groups[0].assets[0].is_favorite", [1]), "groups[0].assets[0].is_favorite"),
    "negative_file_size.json": (_set("groups[0].assets[0].file_size", -5), "groups[0].assets[0].file_size"),
    "rating_out_of_range.json": (_set("groups[0].assets[0].rating", 9), "groups[0].assets[0].rating"),
    "utc_offset_out_of_range.json": (_set("groups[0].assets[0].utc_offset_minutes", 5000), "utc_offset_minutes"),
    # ids
    "invalid_uuid_asset.json": (_set("groups[0].assets[0].id", "not-a-uuid"), "groups[0].assets[0].id"),
    "invalid_uuid_duplicate_id.json": (_set("groups[1].duplicate_id", "../../etc/passwd"), "groups[1].duplicate_id"),
    "invalid_uuid_user.json": (_set("user_id", "admin"), "user_id"),
    "invalid_uuid_winner.json": (_set("groups[0].winner", "x" * 36), "groups[0].winner"),
    # structure
    "duplicate_group_ids.json": (
        _edit(lambda p: p["groups"].append(copy.deepcopy(p["groups"][0]))), "appears twice"),
    "asset_in_two_groups.json": (_edit(_asset_in_two_groups), "an asset belongs to one group"),
    "winner_is_also_a_loser.json": (_edit(_winner_is_loser), "is also a loser"),
    "winner_not_in_group.json": (_edit(_winner_not_in_group), "is not an asset of this group"),
    "asset_neither_kept_nor_loser.json": (_edit(_neither_kept_nor_loser), "either kept or a loser"),
    "asset_listed_twice.json": (_edit(_asset_twice), "listed twice"),
    "group_of_one.json": (_edit(_one_asset), "groups[0].assets"),
    "source_outside_group.json": (_edit(_sources_outside), "sources.gps"),
    # numbers
    "nan_latitude.json": (_nan_token("latitude", "NaN"), "groups[0].assets[1].latitude"),
    "infinite_longitude.json": (_nan_token("longitude", "-Infinity"), "groups[0].assets[1].longitude"),
    "latitude_out_of_range.json": (_set("groups[0].assets[1].latitude", 91.0), "latitude"),
    "longitude_out_of_range.json": (_set("groups[0].assets[1].longitude", -181.0), "longitude"),
    "consolidated_latitude_out_of_range.json": (_set("groups[0].consolidated.latitude", -90.5), "consolidated.latitude"),
    # bound to a server and a user
    "another_server.json": (_set("server_url", OTHER_SERVER), "other-immich.example"),
    "another_user.json": (_set("user_id", OTHER_USER), "another user"),
    # valid plans with hostile file names: accepted (execute sanitises its backup names)
    "hostile_name_traversal.json": (_hostile("../../../../../etc/cron.d/evil.jpg"), ACCEPT),
    "hostile_name_control_chars.json": (_hostile("evil\u0007\u001b[2J\u202egpj.exe\u0000.jpg"), ACCEPT),
    "hostile_name_windows_device.json": (_hostile("C:\\Windows\\..\\CON.jpg"), ACCEPT),
    # a byte-order mark (Windows editors add one): read as the plan it is
    "utf8_bom.json": (_raw(lambda b: b"\xef\xbb\xbf" + b), ACCEPT),
}
BOUND = frozenset({"another_server.json", "another_user.json"})
"""Valid plan files that execute refuses: made for another server or another user."""


def ten_mb_description(base: Plan) -> bytes:
    """A caption of 10 MB: refused by the plan's limit on descriptions (built at test time)."""
    p = copy.deepcopy(base)
    p["groups"][0]["assets"][0]["description"] = "A" * (10 * 1024 * 1024)
    return _dump(p)


def build_all(base: Plan | None = None) -> dict[str, bytes]:
    base = base or base_plan()
    return {name: build(base) for name, (build, _) in CASES.items()}


def main() -> int:
    CORPUS.mkdir(exist_ok=True)
    files = build_all()
    for old in CORPUS.glob("*.json"):
        if old.name not in files:
            old.unlink()
    for name, data in files.items():
        (CORPUS / name).write_bytes(data)
    sys.stdout.write(f"{len(files)} plan files written to {CORPUS}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
