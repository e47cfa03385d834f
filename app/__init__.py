"""Tingxie (听写): a self-hosted speech-to-text task platform."""

__version__ = "0.1.0"
