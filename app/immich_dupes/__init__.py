"""immich-dupes: safe duplicate cleanup for Immich."""

__version__ = "0.1.0"
