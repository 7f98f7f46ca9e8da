"""Benchmark: memory and speed of ``ImmichClient.upload`` (restore's re-upload) for big files.

    /work/venv/bin/python bench/bench_upload.py [--size-mb 1024] [--concurrent 4]

``--concurrent`` uploads of one ``--size-mb`` file (sparse, with a checksum so the streamed
bytes are verified) run at once through the real client against an in-process endpoint that
discards the body as it streams by (connect() is answered by the fake Immich). Printed: the
client's peak RSS above its level before the uploads (VmHWM reset just before) and the
throughput of the client alone (disk read + SHA-1 + multipart framing, no network).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

from immich_dupes.fake import FakeImmich
from immich_dupes.immich.client import ImmichClient

MB = 1 << 20


class Discard(httpx.AsyncBaseTransport):
    """Reads each upload body to the end and answers ``created``; everything else goes to the fake."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.n = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if not (request.method == "POST" and request.url.path == "/api/assets"):
            return await self.inner.handle_async_request(request)
        assert isinstance(request.stream, httpx.AsyncByteStream)
        async for _ in request.stream:
            pass
        self.n += 1
        aid = f"00000000-0000-4000-8000-{self.n:012d}"
        return httpx.Response(201, json={"id": aid, "status": "created"}, request=request)


def _vm(field: str) -> int:
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def _reset_peak() -> None:
    """Reset VmHWM so it reports the peak from now on (Linux >= 4.0)."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def make_file(path: Path, size_mb: int) -> str:
    """A sparse file with bytes at both ends; returns its base64 SHA-1."""
    with path.open("wb") as f:
        f.write(b"start")
        f.seek(size_mb * MB - 3)
        f.write(b"end")
    sha1 = hashlib.sha1()
    with path.open("rb") as f:
        while block := f.read(8 * MB):
            sha1.update(block)
    return base64.b64encode(sha1.digest()).decode()


async def run(src: Path, checksum: str, size_mb: int, concurrent: int) -> None:
    fake = FakeImmich(library="empty", profile="v3")
    when = datetime(2020, 1, 1, tzinfo=UTC)
    async with ImmichClient(
        "http://fake-immich", fake.api_key, transport=Discard(fake.transport()),
        rate_limit=1000.0, concurrency=concurrent,
    ) as c:
        await c.connect()
        _reset_peak()
        before = _vm("VmRSS")
        t0 = time.perf_counter()
        await asyncio.gather(*(
            c.upload(src, filename="video.mp4", file_created_at=when, file_modified_at=when,
                     checksum=checksum)
            for _ in range(concurrent)
        ))
        wall = time.perf_counter() - t0
        peak = _vm("VmHWM")
    total = size_mb * concurrent
    print(f"{concurrent} x {size_mb} MB uploads: {wall:.2f} s, {total / wall:.0f} MB/s, "
          f"peak RSS +{(peak - before) / MB:.1f} MB over {before / MB:.0f} MB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--size-mb", type=int, default=1024)
    ap.add_argument("--concurrent", type=int, default=4)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "video.mp4"
        checksum = make_file(src, a.size_mb)
        asyncio.run(run(src, checksum, a.size_mb, a.concurrent))


if __name__ == "__main__":
    main()
