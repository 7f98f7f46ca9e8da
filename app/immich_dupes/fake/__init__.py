"""A spec-faithful fake Immich server for the demo, the tests and the benchmarks.

One implementation served two ways: in-process httpx transports (``FakeImmich.transport()`` /
``sync_transport()``) and a real HTTP/1.1 server on loopback (``FakeServer``). It behaves like
the recorded Immich 3.1 responses (``profile="v3"``) or emulates 1.144 / 2.7 (``"v1"``/``"v2"``),
models the background jobs that rewrite dates and zones after an edit, and injects faults.

    fake = FakeImmich(library="sample", profile="v3")
    async with httpx.AsyncClient(transport=fake.transport(), base_url="http://fake-immich") as c:
        r = await c.get("/api/duplicates", headers={"x-api-key": fake.api_key})
"""

from __future__ import annotations

from immich_dupes.fake.core import FakeImmich, RequestRecord
from immich_dupes.fake.faults import Faults
from immich_dupes.fake.server import FakeServer, serve_forever

__all__ = ["FakeImmich", "FakeServer", "Faults", "RequestRecord", "serve_forever"]
