"""``python -m app.cli``: the same as the ``tingxie`` console script."""

from app.cli import entry_point

entry_point()
