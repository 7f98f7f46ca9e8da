"""Widgets of the review app: group list, asset cards, diff table."""
