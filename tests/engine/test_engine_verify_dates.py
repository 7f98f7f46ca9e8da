"""Pure parts of verify: date/offset comparison as Immich stores it, server binding."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from immich_dupes.engine.verify import (
    compare_date,
    is_named_zone,
    parse_offset_datetime,
    same_server,
)
from immich_dupes.immich.models import ExifInfo


def exif(instant: str, zone: str | None) -> ExifInfo:
    return ExifInfo(dateTimeOriginal=datetime.fromisoformat(instant), timeZone=zone)


def test_same_instant_and_offset_is_ok() -> None:
    assert compare_date("2019-07-04T18:30:00+02:00", exif("2019-07-04T16:30:00+00:00", "UTC+2"))[0] == "ok"
    assert compare_date("2019-07-04T18:30:00+02:00", exif("2019-07-04T16:30:00+00:00", "+02:00"))[0] == "ok"


def test_iana_zone_from_gps_with_other_offset_is_a_note() -> None:
    sev, msg = compare_date("2019-07-04T18:30:00+02:00", exif("2019-07-04T16:30:00+00:00", "Asia/Tokyo"))
    assert sev == "note"
    assert "Asia/Tokyo" in msg
    assert "same instant" in msg


def test_iana_zone_with_same_offset_is_a_note_naming_the_zone() -> None:
    sev, msg = compare_date("2019-07-04T18:30:00+02:00", exif("2019-07-04T16:30:00+00:00", "Europe/Berlin"))
    assert sev == "note"
    assert "Europe/Berlin" in msg


def test_dropped_negative_half_hour_offset_is_an_anomaly_saying_so() -> None:
    # Immich reverted to the file's own date (UTC-3) instead of the -04:30 we wrote.
    sev, msg = compare_date("2021-03-03T15:36:07-04:30", exif("2020-01-02T06:04:05+00:00", "UTC-3"))
    assert sev == "anomaly"
    assert "dropped the offset -04:30" in msg


def test_other_date_difference_is_an_anomaly() -> None:
    sev, msg = compare_date("2019-07-04T18:30:00+02:00", exif("2019-07-05T16:30:00+00:00", "UTC+2"))
    assert sev == "anomaly"
    assert "dropped" not in msg


def test_fixed_offset_differs_at_same_instant_is_an_anomaly() -> None:
    assert compare_date("2019-07-04T18:30:00+02:00", exif("2019-07-04T16:30:00+00:00", "UTC+3"))[0] == "anomaly"


def test_missing_date_or_zone_is_an_anomaly() -> None:
    assert compare_date("2019-07-04T18:30:00+02:00", ExifInfo())[0] == "anomaly"
    assert compare_date("2019-07-04T18:30:00+02:00", exif("2019-07-04T16:30:00+00:00", None))[0] == "anomaly"


def test_parse_offset_datetime() -> None:
    inst, off = parse_offset_datetime("2019-07-04T18:30:00-04:30") or (None, None)
    assert inst == datetime(2019, 7, 4, 23, 0, tzinfo=UTC)
    assert off == -270
    assert parse_offset_datetime("2019-07-04T18:30:00") is None


@pytest.mark.parametrize(
    ("zone", "named"),
    [("Asia/Tokyo", True), ("UTC+9", False), ("+02:00", False), ("UTC", False), (None, False), ("Nowhere/X", False)],
)
def test_is_named_zone(zone: str | None, named: bool) -> None:
    assert is_named_zone(zone) is named


def test_same_server_normalises_urls() -> None:
    assert same_server("http://Host:2283/api", "http://host:2283")
    assert same_server("https://h/immich/", "https://h/immich/api")
    assert not same_server("http://h:2283/api", "http://h:2284/api")
    assert not same_server("http://h/api", "https://h/api")
