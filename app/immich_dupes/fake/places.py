"""A tiny reverse geocoder: known places → city/state/country and the IANA zone.

Real Immich reverse-geocodes GPS with GeoNames and derives the zone of a position during
metadata extraction. The fake knows the places of its sample and synthetic libraries and a few
more; a position within ``MAX_KM`` of one of them gets its names and zone, anything else none.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MAX_KM = 300.0


@dataclass(frozen=True, slots=True)
class Place:
    city: str
    state: str
    country: str
    zone: str
    lat: float
    lon: float
    std_offset: int  # minutes, used only when the system has no tz database


PLACES: tuple[Place, ...] = (
    Place(
        "Paris 04 Hôtel-de-Ville", "Ile-de-France", "France", "Europe/Paris", 48.8566, 2.3522, 60
    ),
    Place("Munich", "Bavaria", "Germany", "Europe/Berlin", 48.1372, 11.5756, 60),
    Place("Mitte", "Berlin", "Germany", "Europe/Berlin", 52.52, 13.405, 60),
    Place("Intendente", "Lisbon", "Portugal", "Europe/Lisbon", 38.7223, -9.1393, 0),
    Place("Reykjavík", "Capital Region", "Iceland", "Atlantic/Reykjavik", 64.1466, -21.9426, 0),
    Place("Eifuku", "Tokyo", "Japan", "Asia/Tokyo", 35.6762, 139.6503, 540),
    Place(
        "Cape Town", "Western Cape", "South Africa", "Africa/Johannesburg", -33.9249, 18.4241, 120
    ),
    Place("Sydney", "New South Wales", "Australia", "Australia/Sydney", -33.8688, 151.2093, 600),
    Place("Rome", "Lazio", "Italy", "Europe/Rome", 41.9028, 12.4964, 60),
    Place(
        "St. John's",
        "Newfoundland and Labrador",
        "Canada",
        "America/St_Johns",
        47.5615,
        -52.7126,
        -210,
    ),
    Place(
        "New York",
        "New York",
        "United States of America",
        "America/New_York",
        40.7128,
        -74.006,
        -300,
    ),
    Place("London", "England", "United Kingdom", "Europe/London", 51.5074, -0.1278, 0),
    Place("Caracas", "Capital District", "Venezuela", "America/Caracas", 10.4806, -66.9036, -240),
    Place("Mumbai", "Maharashtra", "India", "Asia/Kolkata", 19.076, 72.8777, 330),
    Place("Kathmandu", "Bagmati Province", "Nepal", "Asia/Kathmandu", 27.7172, 85.324, 345),
    Place(
        "Adelaide", "South Australia", "Australia", "Australia/Adelaide", -34.9285, 138.6007, 570
    ),
    Place(
        "Los Angeles",
        "California",
        "United States of America",
        "America/Los_Angeles",
        34.0522,
        -118.2437,
        -480,
    ),
    Place(
        "Chicago",
        "Illinois",
        "United States of America",
        "America/Chicago",
        41.8781,
        -87.6298,
        -360,
    ),
    Place(
        "Denver", "Colorado", "United States of America", "America/Denver", 39.7392, -104.9903, -420
    ),
    Place(
        "Honolulu",
        "Hawaii",
        "United States of America",
        "Pacific/Honolulu",
        21.3069,
        -157.8583,
        -600,
    ),
    Place("Mexico City", "Mexico City", "Mexico", "America/Mexico_City", 19.4326, -99.1332, -360),
    Place("São Paulo", "São Paulo", "Brazil", "America/Sao_Paulo", -23.5505, -46.6333, -180),
    Place(
        "Buenos Aires",
        "Buenos Aires",
        "Argentina",
        "America/Argentina/Buenos_Aires",
        -34.6037,
        -58.3816,
        -180,
    ),
    Place("Madrid", "Madrid", "Spain", "Europe/Madrid", 40.4168, -3.7038, 60),
    Place("Amsterdam", "North Holland", "Netherlands", "Europe/Amsterdam", 52.3676, 4.9041, 60),
    Place("Vienna", "Vienna", "Austria", "Europe/Vienna", 48.2082, 16.3738, 60),
    Place("Stockholm", "Stockholm", "Sweden", "Europe/Stockholm", 59.3293, 18.0686, 60),
    Place("Athens", "Attica", "Greece", "Europe/Athens", 37.9838, 23.7275, 120),
    Place("Istanbul", "Istanbul", "Turkey", "Europe/Istanbul", 41.0082, 28.9784, 180),
    Place("Cairo", "Cairo", "Egypt", "Africa/Cairo", 30.0444, 31.2357, 120),
    Place("Nairobi", "Nairobi", "Kenya", "Africa/Nairobi", -1.2921, 36.8219, 180),
    Place("Dubai", "Dubai", "United Arab Emirates", "Asia/Dubai", 25.2048, 55.2708, 240),
    Place("Bangkok", "Bangkok", "Thailand", "Asia/Bangkok", 13.7563, 100.5018, 420),
    Place("Singapore", "Singapore", "Singapore", "Asia/Singapore", 1.3521, 103.8198, 480),
    Place("Hong Kong", "Hong Kong", "Hong Kong", "Asia/Hong_Kong", 22.3193, 114.1694, 480),
    Place("Seoul", "Seoul", "South Korea", "Asia/Seoul", 37.5665, 126.978, 540),
    Place("Auckland", "Auckland", "New Zealand", "Pacific/Auckland", -36.8485, 174.7633, 720),
)

_BY_ZONE = {p.zone: p.std_offset for p in PLACES}


def _km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp = p2 - p1
    dl = math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371.0088 * math.asin(min(1.0, math.sqrt(a)))


def nearest_place(lat: float, lon: float, max_km: float = MAX_KM) -> Place | None:
    """The closest known place within ``max_km``, or None."""
    best: Place | None = None
    best_km = max_km
    for p in PLACES:
        if abs(p.lat - lat) > 5 and abs(p.lat - lat) * 111 > max_km:
            continue
        d = _km(lat, lon, p.lat, p.lon)
        if d <= best_km:
            best, best_km = p, d
    return best


def standard_offset(zone: str) -> int:
    """Fallback offset of a known IANA zone when no tz database is installed."""
    return _BY_ZONE.get(zone, 0)
