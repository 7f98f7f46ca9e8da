"""Helpers for the fake-Immich tests: spec lookup and validation, recorded bodies, clients."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator
from openapi_schema_validator import OAS30Validator, oas30_format_checker

from immich_dupes.fake import FakeImmich

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "immich"
RECORDED = REPO / "tests" / "fixtures" / "recorded"
SPEC_FILES = {"v1": "openapi-v1.json", "v2": "openapi-v2.json", "v3": "openapi.json"}
BASE = "http://fake-immich"


def recorded(name: str) -> Any:
    return json.loads((RECORDED / name).read_text(encoding="utf-8"))


def _nullable_allof(node: Any) -> Any:
    """The specs write nullable references as ``{allOf: [ref], nullable: true}``; the validator
    does not carry ``nullable`` into ``allOf``, so spell it ``anyOf: [ref, null]``."""
    if isinstance(node, dict):
        out = {k: _nullable_allof(v) for k, v in node.items()}
        if (
            out.get("nullable") is True
            and isinstance(out.get("allOf"), list)
            and len(out["allOf"]) == 1
        ):
            ref = out.pop("allOf")[0]
            out.pop("nullable")
            out["anyOf"] = [ref, {"enum": [None], "nullable": True}]
        return out
    if isinstance(node, list):
        return [_nullable_allof(v) for v in node]
    return node


@cache
def _load_spec(profile: str) -> dict[str, Any] | None:
    path = SHARED / SPEC_FILES[profile]
    if not path.exists():
        return None
    return _nullable_allof(json.loads(path.read_text(encoding="utf-8")))  # type: ignore[no-any-return]


def spec_for(profile: str) -> dict[str, Any]:
    spec = _load_spec(profile)
    if spec is None:
        pytest.skip(
            f"{SHARED / SPEC_FILES[profile]} not found: conformance needs the Immich specs beside the repo"
        )
    return spec


# Error bodies have no schema in the specs; these follow immich-api.md §8 and the recordings.
ERROR_V3 = {
    "type": "object",
    "required": ["message"],
    "additionalProperties": False,
    "properties": {
        "message": {"type": "string"},
        "errors": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["code", "path", "message"],
                "properties": {
                    "code": {"type": "string"},
                    "path": {"type": "array", "items": {"type": ["string", "integer"]}},
                    "message": {"type": "string"},
                },
            },
        },
    },
}
ERROR_LEGACY = {
    "type": "object",
    "required": ["message", "error", "statusCode", "correlationId"],
    "additionalProperties": False,
    "properties": {
        "message": {
            "anyOf": [
                {"type": "string"},
                {"type": "array", "items": {"type": "string"}, "minItems": 1},
            ]
        },
        "error": {"type": "string"},
        "statusCode": {"type": "integer"},
        "correlationId": {"type": "string"},
    },
}


# Statuses the real server sends that a spec forgot. 1.144 documents only 201 for uploads, yet
# every version answers 200 {status: "duplicate"} (immich-api.md §7): same schema as 201.
UNDOCUMENTED = {("v1", "POST", "/assets", 200): "201"}


@dataclass
class Exchange:
    method: str
    path: str
    status: int
    headers: httpx.Headers
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class SpecChecker:
    """Validates answers against the operation's response schema of one spec."""

    def __init__(self, profile: str) -> None:
        self.profile = profile
        self.spec = spec_for(profile)
        self._routes: list[tuple[re.Pattern[str], str]] = []
        for template in self.spec["paths"]:
            regex = "^/api" + re.sub(r"\{[^}]+\}", "[^/]+", template) + "$"
            self._routes.append((re.compile(regex), template))
        # literal paths before templated ones (/assets/statistics before /assets/{id})
        self._routes.sort(key=lambda r: r[1].count("{"))

    def template(self, method: str, path: str) -> str | None:
        for regex, template in self._routes:
            if regex.match(path) and method.lower() in self.spec["paths"][template]:
                return template
        return None

    def validator(self, schema: dict[str, Any]) -> OAS30Validator:
        return OAS30Validator(
            {**schema, "components": self.spec["components"]}, format_checker=oas30_format_checker
        )

    def errors(self, ex: Exchange) -> list[str]:
        """Problems with one exchange (empty when it conforms)."""
        if ex.status >= 400:
            if not ex.body:
                return []  # 416 and injected connection faults carry no body
            schema = ERROR_LEGACY if self.profile in ("v1", "v2") else ERROR_V3
            problems = [e.message for e in Draft202012Validator(schema).iter_errors(ex.json())]
            if self.profile == "v3" and "x-correlation-id" not in ex.headers:
                problems.append("no X-Correlation-ID header")
            body = ex.json()
            if self.profile != "v3" and body.get("statusCode") != ex.status:
                problems.append(f"statusCode {body.get('statusCode')} != {ex.status}")
            return problems
        template = self.template(ex.method, ex.path)
        if template is None:
            return [f"{ex.method} {ex.path} is not in the {self.profile} spec"]
        op = self.spec["paths"][template][ex.method.lower()]
        if ex.status in (206, 302):
            return []  # Range and fullsize redirects: documented behaviour, not in the spec
        status = UNDOCUMENTED.get((self.profile, ex.method, template, ex.status), str(ex.status))
        response = op["responses"].get(status)
        if response is None:
            return [
                f"{ex.method} {template}: status {ex.status} not documented ({list(op['responses'])})"
            ]
        content = response.get("content") or {}
        if not content:
            return [] if not ex.body else [f"{ex.method} {template}: {ex.status} must have no body"]
        if "application/json" in content:
            schema = content["application/json"]["schema"]
            try:
                body = ex.json()
            except ValueError:
                return [f"{ex.method} {template}: body is not JSON"]
            return [
                f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
                for e in self.validator(schema).iter_errors(body)
            ]
        return [] if ex.body else [f"{ex.method} {template}: empty binary body"]


@dataclass
class Recorder:
    exchanges: list[Exchange] = field(default_factory=list)

    def __call__(self, response: httpx.Response) -> None:
        response.read()
        self.exchanges.append(
            Exchange(
                response.request.method,
                response.request.url.path,
                response.status_code,
                response.headers,
                response.content,
            )
        )


def client(
    fake: FakeImmich, key: str | None = "admin", recorder: Recorder | None = None
) -> httpx.Client:
    headers = {}
    if key is not None:
        headers["x-api-key"] = fake.api_key if key == "admin" else key
    hooks = {"response": [recorder]} if recorder is not None else {}
    return httpx.Client(
        transport=fake.sync_transport(), base_url=BASE, headers=headers, event_hooks=hooks
    )


def shape(value: Any) -> Any:
    """A structure's shape: dict keys (sorted) → shapes, list → first item's shape, scalars → type."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "str"
    return "null"


def walk_keys(value: Any, prefix: str = "") -> Iterator[str]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield f"{prefix}{k}"
            yield from walk_keys(v, f"{prefix}{k}.")


def jpeg(
    local: str | None = None,
    offset: int | None = None,
    gps: tuple[float, float] | None = None,
    description: str = "",
    make: str | None = None,
    model: str | None = None,
    size: tuple[int, int] = (320, 240),
    seed: int = 99,
) -> bytes:
    """A small JPEG with real EXIF."""
    from datetime import datetime

    from immich_dupes.fake.media import ExifSpec, encode_jpeg, render_scene

    spec = ExifSpec(
        local=datetime.strptime(local, "%Y:%m:%d %H:%M:%S") if local else None,
        offset=offset,
        latitude=gps[0] if gps else None,
        longitude=gps[1] if gps else None,
        description=description,
        make=make,
        model=model,
    )
    return encode_jpeg(render_scene(seed, f"test {seed}", size), 85, spec)


def upload(
    c: httpx.Client,
    data: bytes,
    filename: str,
    *,
    profile: str = "v3",
    created: str = "2020-01-02T06:04:05.000Z",
    checksum: str | None = None,
    extra: dict[str, str] | None = None,
) -> httpx.Response:
    fields = {
        "fileCreatedAt": created,
        "fileModifiedAt": created,
        "filename": filename,
        "isFavorite": "false",
    }
    if profile != "v3":
        fields.update({"deviceAssetId": f"{filename}-{len(data)}", "deviceId": "tests"})
    fields.update(extra or {})
    headers = {"x-immich-checksum": checksum} if checksum else {}
    return c.post(
        "/api/assets",
        data=fields,
        files={"assetData": (filename, data, "image/jpeg")},
        headers=headers,
    )
