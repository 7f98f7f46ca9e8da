"""IO with the server and the disk: analyze, execute, verify, restore. Reports events, never prints."""
