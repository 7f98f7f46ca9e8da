"""The fake's libraries: ``sample`` (real pictures with real EXIF) and ``synthetic:N`` (fast).

``sample`` mirrors the scenes s01..s13 recorded on a real Immich 3.1 server, plus the other
cases the analysis must handle (live photo, two descriptions, image + video, no dimensions,
near-identical copies, a negative half-hour offset). Files are generated once per process;
the metadata of each asset is read back from its own bytes, like Immich's extraction does.
"""

from __future__ import annotations

import base64
import hashlib
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from immich_dupes.fake._time import local_wall, offset_label, uuid_for
from immich_dupes.fake.media import (
    ExifSpec,
    FileMeta,
    encode_jpeg,
    encode_png,
    fake_mp4,
    mime_for,
    read_file_meta,
    render_scene,
)
from immich_dupes.fake.places import PLACES, Place, nearest_place
from immich_dupes.fake.records import Asset, Blob, SynthBase, SynthBlob
from immich_dupes.fake.store import Store, b64_sha1

FALLBACK_TIME = datetime(2011, 1, 1, 12, 0, tzinfo=UTC)
UPLOAD_TIME = datetime(2026, 1, 10, 9, 0, tzinfo=UTC)
SAMPLE_ALBUM = "Seed album (duplicates test)"


@dataclass(frozen=True)
class SampleFile:
    name: str
    size: tuple[int, int] | None = None
    exif: ExifSpec | None = None
    quality: int = 90
    video_ms: int | None = None  # set for videos
    video_bytes: int = 0
    video_local: datetime | None = None  # naive UTC creation time of a video
    favorite: bool = False
    visibility: str = "timeline"
    rating: int | None = None
    tags: tuple[str, ...] = ()
    albums: tuple[str, ...] = ()
    external: bool = False
    live_video: str | None = None  # name of the hidden motion part (a SampleFile of this scene)
    grouped: bool = True  # False: not part of the duplicate group (the hidden motion video)


@dataclass(frozen=True)
class Scene:
    key: str
    caption: str
    seed: int
    files: tuple[SampleFile, ...] = field(default_factory=tuple)


def _d(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S")


def _x(
    local: str | None,
    offset: int | None = None,
    gps: tuple[float, float] | None = None,
    desc: str = "",
    make: str | None = None,
    model: str | None = None,
) -> ExifSpec:
    return ExifSpec(
        local=_d(local) if local else None,
        offset=offset,
        latitude=gps[0] if gps else None,
        longitude=gps[1] if gps else None,
        description=desc,
        make=make,
        model=model,
    )


PARIS = (48.8566, 2.3522)
MUNICH = (48.1372, 11.5756)
BERLIN = (52.52, 13.405)
LISBON = (38.7223, -9.1393)
REYKJAVIK = (64.1466, -21.9426)
TOKYO = (35.6762, 139.6503)
CAPE_TOWN = (-33.9249, 18.4241)
SYDNEY = (-33.8688, 151.2093)
ROME = (41.9028, 12.4964)
ROME_20M = (41.90298, 12.4964)

# fmt: off
SCENES: tuple[Scene, ...] = (
    Scene("s01", "s01 Paris", 1, (
        SampleFile("s01_large_nogps.jpg", (2000, 1500), _x("2022-05-01 10:00:00", 120, make="Canon", model="EOS R5"), 92),
        SampleFile("s01_small_gps.jpg", (800, 600), _x("2022-05-01 10:00:00", 120, PARIS, make="Apple", model="iPhone 13"), 85),
    )),
    Scene("s02", "s02 Munich/Berlin", 2, (
        SampleFile("s02_small_munich.jpg", (750, 500), _x("2021-08-20 14:00:00", 120, MUNICH), 85, albums=("Holidays 2021",)),
        SampleFile("s02_large_berlin.jpg", (1500, 1000), _x("2021-08-20 14:00:00", 120, BERLIN), 90),
    )),
    Scene("s03", "s03 offsets", 3, (
        SampleFile("s03_small_plus0000.jpg", (600, 400), _x("2023-07-14 16:30:00", 0), 85),
        SampleFile("s03_large_plus0200.jpg", (1200, 800), _x("2023-07-14 18:30:00", 120, make="Sony", model="ILCE-7M3"), 90),
    )),
    Scene("s04", "s04 harbour", 4, (
        SampleFile("s04_large_nodesc.jpg", (1600, 1200), _x("2020-02-29 07:15:00", 60), 90),
        SampleFile("s04_small_desc.jpg", (400, 300), _x("2020-02-29 07:15:00", 60, desc="Harbour at dawn - only the small copy has this caption"), 85),
    )),
    Scene("s05", "s05 tram", 5, (
        SampleFile("s05_a_large_dateonly.jpg", (1500, 1000), _x("2019-10-05 12:00:00", 60), 90),
        SampleFile("s05_b_medium_gps.jpg", (750, 500), _x(None, gps=LISBON), 88),
        SampleFile("s05_c_small_desc.jpg", (375, 250), _x(None, desc="Three copies of the same tram"), 85),
    )),
    Scene("s06", "s06 png/jpeg", 6, (
        SampleFile("s06_png_nometa.png", (1000, 750)),
        SampleFile("s06_jpeg_exif.jpg", (1000, 750), _x("2018-06-21 21:45:00", 0, REYKJAVIK, make="FUJIFILM", model="X-T4"), 90),
    )),
    Scene("s07", "s07 same pixels", 7, (
        SampleFile("s07_tie_q75_pixel_gps.jpg", (1024, 768), _x("2024-03-10 09:00:00", 540, TOKYO, make="Google", model="Pixel 8"), 75),
        SampleFile("s07_tie_q95_canon.jpg", (1024, 768), _x("2024-03-10 09:00:00", 540, make="Canon", model="EOS 5D Mark IV"), 95),
    )),
    Scene("s09", "s09 video", 9, (
        SampleFile("s09_video_360p.mp4", (640, 360), video_ms=3000, video_bytes=24_000),
        SampleFile("s09_video_720p.mp4", (1280, 720), video_ms=3000, video_bytes=96_000, video_local=_d("2022-12-24 18:00:00")),
    )),
    Scene("s10", "s10 external", 10, (
        SampleFile("s10_library_small_gps.jpg", (600, 450), _x("2016-09-09 16:00:00", 120, CAPE_TOWN, desc="Copy that lives in the external library"), 85, external=True),
        SampleFile("s10_upload_large.jpg", (1200, 900), _x("2016-09-09 16:00:00", 120), 90),
    )),
    Scene("s11", "s11 favourite", 11, (
        SampleFile("s11_small_fav_album.jpg", (500, 375), _x("2015-05-05 15:05:00", 0), 85, favorite=True, albums=(SAMPLE_ALBUM,)),
        SampleFile("s11_large_plain.jpg", (1500, 1125), _x("2015-05-05 15:05:00", 0), 90),
    )),
    Scene("s12", "s12 rated", 12, (
        SampleFile("s12_large_plain.jpg", (1300, 975), _x("2014-12-31 23:59:00", 660), 90),
        SampleFile("s12_small_rated_tagged.jpg", (650, 488), _x("2014-12-31 23:59:00", 660, SYDNEY), 85, rating=4, tags=("seed/keep-me",)),
    )),
    Scene("s13", "s13 archived", 13, (
        SampleFile("s13_small_archived.jpg", (550, 412), _x("2013-04-01 08:00:00", 60), 85, visibility="archive"),
        SampleFile("s13_large_timeline.jpg", (1100, 825), _x("2013-04-01 08:00:00", 60), 90),
    )),
    Scene("s15", "s15 live photo", 15, (
        SampleFile("s15_live_still.jpg", (800, 600), _x("2021-06-12 19:45:00", 120, ROME, make="Apple", model="iPhone 12"), 85, live_video="s15_live_motion.mov", albums=("Holidays 2021",)),
        SampleFile("s15_live_motion.mov", (800, 600), video_ms=1500, video_bytes=40_000, video_local=_d("2021-06-12 17:45:00"), visibility="hidden", grouped=False),
        SampleFile("s15_plain_copy.jpg", (1200, 900), _x("2021-06-12 19:45:00", 120), 90),
    )),
    Scene("s16", "s16 captions", 16, (
        SampleFile("s16_large_sunset.jpg", (1200, 800), _x("2018-09-02 19:30:00", 120, desc="Sunset over the bay"), 90),
        SampleFile("s16_small_pier.jpg", (900, 600), _x("2018-09-02 19:30:00", 120, desc="Evening at the pier"), 85),
    )),
    Scene("s17", "s17 photo+clip", 17, (
        SampleFile("s17_photo.jpg", (1280, 720), _x("2019-12-24 17:00:00", 60), 88),
        SampleFile("s17_clip.mp4", (1920, 1080), video_ms=4000, video_bytes=120_000, video_local=_d("2019-12-24 16:00:00")),
    )),
    Scene("s18", "s18 no dims", 18, (
        SampleFile("s18_clip_a.mov", None, video_ms=2000, video_bytes=30_000, video_local=_d("2017-03-03 10:00:00")),
        SampleFile("s18_clip_b.mp4", None, video_ms=2000, video_bytes=20_000, video_local=_d("2017-03-03 10:00:00")),
    )),
    Scene("s19", "s19 near-identical", 19, (
        SampleFile("s19_large_rome.jpg", (1400, 1050), _x("2017-06-10 11:00:00", 120, ROME), 90),
        SampleFile("s19_small_rome.jpg", (700, 525), _x("2017-06-10 11:00:01", 120, ROME_20M), 85, tags=("trip/rome",)),
    )),
    Scene("s20", "s20 -03:30", 20, (
        SampleFile("s20_large_nooffset.jpg", (1600, 1200), _x("2016-01-15 14:00:00"), 90),
        SampleFile("s20_small_minus0330.jpg", (800, 600), _x("2016-01-15 14:00:00", -210), 85),
    )),
)
# fmt: on


@dataclass(frozen=True)
class _Built:
    data: bytes
    meta: FileMeta


@lru_cache(maxsize=1)
def sample_files() -> dict[str, _Built]:
    """Every sample file's bytes and extracted metadata (generated once per process)."""
    out: dict[str, _Built] = {}
    for scene in SCENES:
        master = render_scene(scene.seed, scene.caption)
        for f in scene.files:
            if f.video_ms is not None:
                w, h = f.size or (None, None)
                meta = FileMeta(
                    width=w, height=h, local=f.video_local, offset=0 if f.video_local else None
                )
                meta.orientation = "1"
                out[f.name] = _Built(fake_mp4(scene.seed * 100 + len(out), f.video_bytes), meta)
                continue
            assert f.size is not None
            img = master.resize(f.size) if f.size != master.size else master
            data = (
                encode_png(img) if f.name.endswith(".png") else encode_jpeg(img, f.quality, f.exif)
            )
            out[f.name] = _Built(data, read_file_meta(data))
    return out


def _thumbhash(key: str) -> str:
    return base64.b64encode(hashlib.sha1(key.encode()).digest()[:18]).decode()


def build_sample(store: Store, owner: str, ns: str) -> None:
    """Populate ``owner``'s library with the sample scenes."""
    files = sample_files()
    library_id = uuid_for(ns, "library", owner)
    albums: dict[str, str] = {}
    i = 0
    for scene in SCENES:
        dup = uuid_for(ns, "sample-group", owner, scene.key)
        ids: dict[str, str] = {}
        for f in scene.files:
            i += 1
            built = files[f.name]
            aid = uuid_for(ns, "sample-asset", owner, f.name)
            ids[f.name] = aid
            created = UPLOAD_TIME + timedelta(seconds=i)
            mime = mime_for(f.name)
            kind = "VIDEO" if mime.startswith("video/") else "IMAGE"
            if f.external:
                path = f"/mnt/external/seed-library/{f.name}"
                checksum = b64_sha1(hashlib.sha1(f"path:{path}".encode()).digest())
            else:
                ext = f.name[f.name.rfind(".") :]
                path = f"/data/upload/{owner}/{aid[:2]}/{aid[2:4]}/{aid}{ext}"
                checksum = ""
            scene_ref = (scene.seed, scene.caption) if kind == "VIDEO" else None
            content = Blob(built.data, f"sample:{f.name}", scene_ref)
            a = Asset(
                id=aid,
                owner_id=owner,
                type=kind,
                file_name=f.name,
                mime=mime,
                path=path,
                content=content,
                checksum=checksum or b64_sha1(content.sha1),
                created_at=created,
                updated_at=created + timedelta(seconds=20),
                file_created_at=FALLBACK_TIME,
                file_modified_at=FALLBACK_TIME,
                local_date_time=FALLBACK_TIME,
                fallback_time=FALLBACK_TIME,
                file=built.meta,
                library_id=library_id if f.external else None,
                is_favorite=f.favorite,
                visibility=f.visibility,
                duration_ms=f.video_ms,
                thumbhash=_thumbhash(scene.key),
                device_asset_id=f"{f.name}-{content.size}",
            )
            store.extract(a, initial=True)
            a.file_modified_at = a.file_created_at if f.external is False else created
            a.modify_date = a.file_modified_at
            a.rating = f.rating
            if f.grouped:
                a.duplicate_id = dup
            store.add_asset(a)
            for value in f.tags:
                tag = store.upsert_tag(owner, value, created)
                store.tag_asset(tag, a)
                tag.updated_at = created
            for name in f.albums:
                if name not in albums:
                    albums[name] = store.add_album(owner, name, "", created).id
                store.album_add(store.albums[albums[name]], [aid], owner)
                store.albums[albums[name]].updated_at = created
        for f in scene.files:
            if f.live_video:
                still = store.assets[ids[f.name]]
                store.set_live_photo(still, ids[f.live_video])
    store.jobs.clear()  # tagging queued sidecar writes; the library starts settled


# =============================================================================== synthetic

_DIMS = ((4032, 3024), (4000, 3000), (6000, 4000), (3264, 2448), (5472, 3648), (2048, 1536))
_VIDEO_DIMS = ((1920, 1080), (1280, 720), (3840, 2160))
_OFFSETS = (0, 60, 60, 120, 120, -300, -240, -420, 330, 540, 600, 480, -180)
_CAMERAS = (
    ("Apple", "iPhone 13"),
    ("Canon", "EOS R5"),
    ("Google", "Pixel 8"),
    ("SONY", "ILCE-7M3"),
    (None, None),
)
_WORDS = (
    "beach",
    "mountain",
    "birthday",
    "city",
    "forest",
    "lake",
    "market",
    "garden",
    "concert",
    "snow",
)
_SYNTH_PALETTES = 8


def _trailer(asset_id: str) -> bytes:
    return f"\n<immich-dupes-fake asset={asset_id}>\n".encode()


@lru_cache(maxsize=_SYNTH_PALETTES)
def _synth_jpeg(palette: int) -> bytes:
    return encode_jpeg(render_scene(1000 + palette, f"synthetic {palette}", (320, 240)), 80)


@lru_cache(maxsize=64)
def _synth_base(palette: int, pad_len: int) -> SynthBase:
    return SynthBase(palette, _synth_jpeg(palette), pad_len)


_TRAILER_LEN = len(_trailer("00000000-0000-4000-8000-000000000000"))


def _pads(original_size: int | None, jpeg_len: int) -> tuple[int, int, int]:
    if original_size is None:
        return (24_000, 12_000, 4_000)
    large, medium, small = (
        max(0, int(original_size * r) - jpeg_len - _TRAILER_LEN) for r in (1.0, 0.6, 0.35)
    )
    return large, medium, small


def build_synthetic(
    store: Store, owner: str, ns: str, groups: int, original_size: int | None = None, seed: int = 7
) -> None:
    """``groups`` duplicate groups of 2–3 assets with varied metadata, built without Pillow work
    per asset: the originals are a shared small JPEG, a shared padding block and a unique trailer.
    """
    rnd = random.Random(seed)
    library_id = uuid_for(ns, "library", owner)
    albums = [store.add_album(owner, f"Synthetic album {k + 1}", "", UPLOAD_TIME) for k in range(5)]
    tags = [
        store.upsert_tag(owner, v, UPLOAD_TIME)
        for v in ("people/alice", "people/bob", "trip", "best")
    ]
    start = datetime(2005, 1, 1)
    span = 19 * 365 * 86400
    for g in range(groups):
        k = 3 if rnd.random() < 0.25 else 2
        dup = uuid_for(ns, "synthetic-group", owner, str(g))
        palette = g % _SYNTH_PALETTES
        jpeg_len = len(_synth_jpeg(palette))
        pads = _pads(original_size, jpeg_len)
        video = rnd.random() < 0.03
        local = start + timedelta(seconds=rnd.randrange(span))
        offset: int | None = rnd.choice(_OFFSETS) if rnd.random() < 0.85 else None
        place: Place | None = rnd.choice(PLACES) if rnd.random() < 0.45 else None
        dims = rnd.choice(_VIDEO_DIMS if video else _DIMS)
        make, model = rnd.choice(_CAMERAS)
        conflict = rnd.random()
        for j in range(k):
            scale = (1.0, 0.5, 0.25)[j]
            w, h = int(dims[0] * scale), int(dims[1] * scale)
            aid = uuid_for(ns, "synthetic-asset", owner, str(g), str(j))
            content = SynthBlob(_synth_base(palette, pads[j]), _trailer(aid))
            c_local = local
            c_offset = offset
            c_place = (
                place if (j == 0 and rnd.random() < 0.5) or (j > 0 and rnd.random() < 0.7) else None
            )
            if conflict < 0.04 and j == 1:
                c_local = local + timedelta(hours=rnd.choice((1, 2, 5)))
            elif conflict < 0.08 and j == 1 and offset is not None:
                c_offset = offset + 60
            elif conflict < 0.12 and j == 1 and place is not None:
                c_place = rnd.choice(PLACES)
            elif conflict < 0.16 and j == 1:
                c_local = local + timedelta(seconds=1)
            lat = lon = None
            if c_place is not None:
                lat = round(c_place.lat + rnd.uniform(-0.02, 0.02), 6)
                lon = round(c_place.lon + rnd.uniform(-0.02, 0.02), 6)
            external = rnd.random() < 0.02
            ext = ".mp4" if video else ".jpg"
            name = f"IMG_{g:06d}_{j}{ext}" if not video else f"VID_{g:06d}_{j}{ext}"
            if external:
                path = f"/mnt/external/photos/{name}"
                checksum = b64_sha1(hashlib.sha1(f"path:{path}".encode()).digest())
            else:
                path = f"/data/upload/{owner}/{aid[:2]}/{aid[2:4]}/{aid}{ext}"
                checksum = b64_sha1(content.sha1)
            if c_offset is not None:
                instant = (c_local - timedelta(minutes=c_offset)).replace(tzinfo=UTC)
                zone: str | None = offset_label(c_offset)
            elif c_place is not None:
                zone = c_place.zone
                instant = c_local.replace(tzinfo=UTC) - timedelta(minutes=c_place.std_offset)
            else:
                zone = None
                instant = c_local.replace(tzinfo=UTC)
            if video and zone is None:
                zone = "UTC"
            meta = FileMeta(
                width=w,
                height=h,
                local=c_local,
                offset=c_offset,
                latitude=lat,
                longitude=lon,
                make=make if j == 0 else None,
                model=model if j == 0 else None,
            )
            desc = rnd.choice(_WORDS) + " " + str(g) if rnd.random() < 0.12 else ""
            meta.description = desc
            created = UPLOAD_TIME + timedelta(seconds=g * 3 + j)
            geo = nearest_place(lat, lon) if lat is not None and lon is not None else None
            a = Asset(
                id=aid,
                owner_id=owner,
                type="VIDEO" if video else "IMAGE",
                file_name=name,
                mime="video/mp4" if video else "image/jpeg",
                path=path,
                content=content,
                checksum=checksum,
                created_at=created,
                updated_at=created,
                file_created_at=instant,
                file_modified_at=instant,
                local_date_time=local_wall(instant, zone),
                fallback_time=instant,
                file=meta,
                library_id=library_id if external else None,
                is_favorite=rnd.random() < 0.05,
                visibility="archive" if rnd.random() < 0.03 else "timeline",
                duplicate_id=dup,
                duration_ms=rnd.randrange(1000, 60000) if video else None,
                thumbhash=_thumbhash(f"synthetic:{palette}"),
                device_asset_id=f"{name}-{content.size}",
                exif_width=w,
                exif_height=h,
                file_size=content.size,
                make=meta.make,
                model=meta.model,
                date_time_original=instant,
                modify_date=instant,
                time_zone=zone,
                latitude=lat,
                longitude=lon,
                city=geo.city if geo else None,
                state=geo.state if geo else None,
                country=geo.country if geo else None,
                description=desc,
                rating=rnd.randint(1, 5) if rnd.random() < 0.05 else None,
            )
            if rnd.random() < 0.04:
                a.tag_ids.append(rnd.choice(tags).id)
            store.add_asset(a)
            if rnd.random() < 0.03:
                albums[rnd.randrange(len(albums))].asset_ids.append(aid)
    for album in albums:
        album.thumbnail_id = album.asset_ids[0] if album.asset_ids else None
    store.changed()
