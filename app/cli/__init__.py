"""``tingxie``: the command-line tool (also ``python -m app.cli``).

    tingxie serve [--host H] [--port P] [--role all|api]   the HTTP API (and, by default, a processor)
    tingxie worker                                         a processor only: no HTTP
    tingxie keys create|list|revoke ...                    API keys, against the configured database
    tingxie transcribe FILE_OR_URL [options]               transcribe through a running server
    tingxie health [--server URL | --worker]               exit 0 when healthy (container health checks)

Each subcommand imports what it needs when it runs, so ``tingxie transcribe`` starts in a fraction
of a second and needs neither the models nor the database.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from config.settings import Settings


def _parser() -> argparse.ArgumentParser:
    from app.cli import health, keys, serve, transcribe

    parser = argparse.ArgumentParser(prog="tingxie", description="Tingxie (听写) speech-to-text service.")
    commands = parser.add_subparsers(dest="group", required=True, metavar="COMMAND")
    serve.add_parsers(commands)
    keys.add_parser(commands)
    transcribe.add_parser(commands)
    health.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None, settings: Settings | None = None) -> int:
    """Run one subcommand and return its exit code (see :class:`app.cli.transcribe.ExitCode`)."""
    args = _parser().parse_args(argv)
    code: int = args.run(args, settings)
    return code


def entry_point() -> None:
    """The ``tingxie`` console script."""
    sys.exit(main())
