"""Errors the handlers raise, body validation, and the error bodies of each server version.

v3 answers ``{message}`` (validation: ``{message: "Validation failed", errors: [zod issues]}``)
with the correlation id in the ``X-Correlation-ID`` header; v1/v2 answer
``{message, error, statusCode, correlationId}`` with class-validator messages as a list.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

UUID_RE = re.compile(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-4[0-9a-fA-F]{3}-[89abAB][0-9a-fA-F]{3}-[0-9a-fA-F]{12}$"
)
UUID_PATTERN_TEXT = (
    "/^([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-4[0-9a-fA-F]{3}-[89abAB][0-9a-fA-F]{3}-[0-9a-fA-F]{12})$/"
)


class ApiError(Exception):
    """An HTTP error with Immich's message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def not_found(permission: str) -> ApiError:
    return ApiError(400, f"Not found or no {permission} access")


@dataclass(slots=True)
class Issue:
    """One validation problem, in both dialects."""

    zod: dict[str, Any]
    legacy: str


class ValidationFailed(Exception):
    def __init__(self, issues: list[Issue]) -> None:
        super().__init__("Validation failed")
        self.issues = issues


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


MISSING: Any = object()


@dataclass
class Validator:
    """Collects issues for a JSON body; ``done()`` raises ValidationFailed if there are any."""

    body: Any
    issues: list[Issue] = field(default_factory=list)

    def require_object(self) -> dict[str, Any]:
        if not isinstance(self.body, dict):
            self.type_issue([], "object", self.body, "body")
            raise ValidationFailed(self.issues)
        return self.body

    def type_issue(self, path: list[str | int], expected: str, value: Any, name: str) -> None:
        received = "undefined" if value is MISSING else _kind(value)
        legacy = {
            "number": f"{name} must be a number conforming to the specified constraints",
            "int": f"{name} must be an integer number",
            "string": f"{name} must be a string",
            "boolean": f"{name} must be a boolean value",
            "array": f"{name} must be an array",
            "object": f"{name} must be an object",
        }.get(expected, f"{name} is invalid")
        self.issues.append(
            Issue(
                {
                    "expected": expected,
                    "code": "invalid_type",
                    "path": path,
                    "message": f"Invalid input: expected {expected}, received {received}",
                },
                legacy,
            )
        )

    def _get(self, key: str) -> Any:
        return self.body.get(key, MISSING) if isinstance(self.body, dict) else MISSING

    def present(self, key: str) -> bool:
        return self._get(key) is not MISSING

    def uuid_value(
        self, path: list[str | int], value: Any, name: str, each: bool = False
    ) -> str | None:
        if not isinstance(value, str):
            self.type_issue(path, "string", value, name)
            return None
        if not UUID_RE.match(value):
            self.issues.append(
                Issue(
                    {
                        "origin": "string",
                        "code": "invalid_format",
                        "format": "uuid",
                        "pattern": UUID_PATTERN_TEXT,
                        "path": path,
                        "message": "Invalid UUID",
                    },
                    f"each value in {name} must be a UUID" if each else f"{name} must be a UUID",
                )
            )
            return None
        return value

    def uuid(self, key: str, *, required: bool = True, nullable: bool = False) -> str | None:
        value = self._get(key)
        if value is MISSING:
            if required:
                self.type_issue([key], "string", value, key)
            return None
        if value is None and nullable:
            return None
        return self.uuid_value([key], value, key)

    def uuids(self, key: str, *, required: bool = True) -> list[str]:
        value = self._get(key)
        if value is MISSING and not required:
            return []
        if not isinstance(value, list):
            self.type_issue([key], "array", value, key)
            return []
        out: list[str] = []
        for i, item in enumerate(value):
            got = self.uuid_value([key, i], item, key, each=True)
            if got is not None:
                out.append(got)
        return out

    def string(self, key: str, *, required: bool = False, nullable: bool = False) -> str | None:
        value = self._get(key)
        if value is MISSING:
            if required:
                self.type_issue([key], "string", value, key)
            return None
        if value is None and nullable:
            return None
        if not isinstance(value, str):
            self.type_issue([key], "string", value, key)
            return None
        return value

    def strings(self, key: str, *, required: bool = True) -> list[str]:
        value = self._get(key)
        if value is MISSING and not required:
            return []
        if not isinstance(value, list):
            self.type_issue([key], "array", value, key)
            return []
        out: list[str] = []
        for i, item in enumerate(value):
            if isinstance(item, str):
                out.append(item)
            else:
                self.type_issue([key, i], "string", item, key)
        return out

    def boolean(self, key: str) -> bool | None:
        value = self._get(key)
        if value is MISSING:
            return None
        if not isinstance(value, bool):
            self.type_issue([key], "boolean", value, key)
            return None
        return value

    def number(
        self,
        key: str,
        *,
        minimum: float | None = None,
        maximum: float | None = None,
        integer: bool = False,
        nullable: bool = False,
    ) -> float | None:
        value = self._get(key)
        if value is MISSING or (value is None and nullable):
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.type_issue([key], "int" if integer else "number", value, key)
            return None
        if integer and not float(value).is_integer():
            self.type_issue([key], "int", value, key)
            return None
        if maximum is not None and value > maximum:
            m: int | float = int(maximum) if float(maximum).is_integer() else maximum
            self.issues.append(
                Issue(
                    {
                        "origin": "number",
                        "code": "too_big",
                        "maximum": m,
                        "inclusive": True,
                        "path": [key],
                        "message": f"Too big: expected number to be <={m}",
                    },
                    f"{key} must not be greater than {m}",
                )
            )
            return None
        if minimum is not None and value < minimum:
            m = int(minimum) if float(minimum).is_integer() else minimum
            self.issues.append(
                Issue(
                    {
                        "origin": "number",
                        "code": "too_small",
                        "minimum": m,
                        "inclusive": True,
                        "path": [key],
                        "message": f"Too small: expected number to be >={m}",
                    },
                    f"{key} must not be less than {m}",
                )
            )
            return None
        return float(value)

    def enum(self, key: str, values: tuple[str, ...]) -> str | None:
        value = self._get(key)
        if value is MISSING:
            return None
        if value not in values:
            options = "|".join(f'"{v}"' for v in values)
            self.issues.append(
                Issue(
                    {
                        "code": "invalid_value",
                        "values": list(values),
                        "path": [key],
                        "message": f"Invalid option: expected one of {options}",
                    },
                    f"{key} must be one of the following values: {', '.join(values)}",
                )
            )
            return None
        return str(value)

    def custom(self, key: str, message: str, legacy: str | None = None) -> None:
        self.issues.append(
            Issue({"code": "custom", "path": [key], "message": message}, legacy or message)
        )

    def done(self) -> None:
        if self.issues:
            raise ValidationFailed(self.issues)


def error_body(
    status: int,
    message: str | None,
    *,
    issues: list[Issue] | None,
    legacy: bool,
    correlation_id: str,
) -> dict[str, Any]:
    """The JSON body of an error answer in the dialect of the server version."""
    if legacy:
        phrase = HTTPStatus(status).phrase
        body: dict[str, Any] = {
            "message": [i.legacy for i in issues] if issues else message,
            "error": phrase,
            "statusCode": status,
            "correlationId": correlation_id,
        }
        return body
    if issues:
        return {"message": "Validation failed", "errors": [i.zod for i in issues]}
    return {"message": message}


def json_error_message(text: str, pos: int) -> str:
    """Node's ``JSON.parse`` wording for a body that is not JSON (as Immich echoes it)."""
    line = text.count("\n", 0, pos) + 1
    col = pos - (text.rfind("\n", 0, pos) + 1) + 1
    stripped = text.strip()
    if not stripped:
        return "Unexpected end of JSON input"
    if pos < len(text) and text[pos - 1 : pos] in ("{", ",") and text[pos] not in ('"', "}"):
        return (
            f"Expected property name or '}}' in JSON at position {pos} (line {line} column {col})"
        )
    if pos >= len(text):
        return f"Unexpected end of JSON input at position {pos} (line {line} column {col})"
    snippet = text if len(text) <= 10 else text[:10] + "..."
    return f"Unexpected token '{text[pos]}', \"{snippet}\" is not valid JSON"
