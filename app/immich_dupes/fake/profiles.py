"""Server versions the fake can pretend to be, and what differs between them for a client."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    version: tuple[int, int, int]
    suggested_keep: bool  # DuplicateResponseDto.suggestedKeepAssetIds (2.7)
    resolve: bool  # POST /duplicates/resolve (2.7)
    resolve_merge_all_keepers: bool  # 2.7.x merged into every keeper; 3.x only with one keeper
    duration_ms: bool  # 3.0: integer ms, before: "H:MM:SS.ffffff"
    dims: bool  # AssetResponseDto width/height/isEdited (2.5)
    device_fields: bool  # deviceAssetId/deviceId (removed in 3.0)
    album_legacy: bool  # AlbumResponseDto ownerId/owner/assets (removed in 3.0)
    rating_zero_null: bool  # before 3.0 a rating of 0 means "unrated"
    legacy_errors: bool  # {message, error, statusCode, correlationId} before 3.0
    prerelease: bool  # ServerVersionResponseDto.prerelease (3.0)
    offset_on_put: bool  # 2.4: PUT stores the offset of dateTimeOriginal as timeZone
    clear_singletons: bool  # 2.7: GET /duplicates clears duplicateId of one-member groups
    ocr: bool  # ServerFeaturesDto.ocr (2.x)
    realtime_transcoding: bool  # ServerFeaturesDto.realtimeTranscoding (3.x)
    maintenance_mode: bool  # ServerConfigDto.maintenanceMode (2.x)
    min_faces: bool  # ServerConfigDto.minFaces (3.x)

    @property
    def version_text(self) -> str:
        return "v{}.{}.{}".format(*self.version)


PROFILES: dict[str, Profile] = {
    "v1": Profile(
        name="v1",
        version=(1, 144, 1),
        suggested_keep=False,
        resolve=False,
        resolve_merge_all_keepers=False,
        duration_ms=False,
        dims=False,
        device_fields=True,
        album_legacy=True,
        rating_zero_null=True,
        legacy_errors=True,
        prerelease=False,
        offset_on_put=False,
        clear_singletons=False,
        ocr=False,
        realtime_transcoding=False,
        maintenance_mode=False,
        min_faces=False,
    ),
    "v2": Profile(
        name="v2",
        version=(2, 7, 5),
        suggested_keep=True,
        resolve=True,
        resolve_merge_all_keepers=True,
        duration_ms=False,
        dims=True,
        device_fields=True,
        album_legacy=True,
        rating_zero_null=True,
        legacy_errors=True,
        prerelease=False,
        offset_on_put=True,
        clear_singletons=True,
        ocr=True,
        realtime_transcoding=False,
        maintenance_mode=True,
        min_faces=False,
    ),
    "v3": Profile(
        name="v3",
        version=(3, 1, 0),
        suggested_keep=True,
        resolve=True,
        resolve_merge_all_keepers=False,
        duration_ms=True,
        dims=True,
        device_fields=False,
        album_legacy=False,
        rating_zero_null=False,
        legacy_errors=False,
        prerelease=True,
        offset_on_put=True,
        clear_singletons=True,
        ocr=True,
        realtime_transcoding=True,
        maintenance_mode=True,
        min_faces=True,
    ),
}


def get_profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(
            f"unknown profile {name!r}: expected one of {', '.join(PROFILES)}"
        ) from None
