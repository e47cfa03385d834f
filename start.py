"""Start Tingxie: the HTTP API and the background processor in one process.

python start.py [--host 127.0.0.1] [--port 8000]
"""

from __future__ import annotations

import argparse

import uvicorn

from app.main import create_app
from config.settings import Settings


def main() -> None:
    settings = Settings()
    parser = argparse.ArgumentParser(description="Tingxie (听写) speech-to-text service")
    parser.add_argument("--host", default=settings.server.host, help="bind address")
    parser.add_argument("--port", type=int, default=settings.server.port, help="TCP port")
    args = parser.parse_args()
    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_config=None)


if __name__ == "__main__":
    main()
