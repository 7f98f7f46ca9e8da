"""The Immich API: an async client and typed models. Knows nothing about plans."""
