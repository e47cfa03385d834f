"""Outbound network access to user-supplied URLs."""
