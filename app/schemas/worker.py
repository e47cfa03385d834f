"""What a node runs."""

from __future__ import annotations

from typing import Literal

NodeRole = Literal["all", "api", "worker"]
"""``all``: the API and a processor (the default); ``api``: the API only, no processor and no models;
``worker``: a processor only, no HTTP server."""
