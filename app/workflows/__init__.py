"""Workflows: stored step graphs that run after a task (validation, conditions, triggers, the runner)."""
