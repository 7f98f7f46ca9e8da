"""Screens of the review app: main, help, preview, confirmations, engine runs."""
