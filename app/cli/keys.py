"""``tingxie keys``: API keys, managed against the configured database.

tingxie keys create --name ci [--admin]
tingxie keys list [--all]
tingxie keys revoke <key id>
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from config.settings import Settings


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = commands.add_parser("keys", help="manage API keys", description="Manage API keys.")
    group.set_defaults(run=run)
    keys = group.add_subparsers(dest="command", required=True)
    create = keys.add_parser("create", help="create a key and print it (shown only once)")
    create.add_argument("--name", required=True, help="who or what uses the key")
    create.add_argument("--admin", action="store_true", help="an admin key (manages keys, sees all tasks)")
    listing = keys.add_parser("list", help="list keys")
    listing.add_argument("--all", action="store_true", help="include revoked keys")
    revoke = keys.add_parser("revoke", help="revoke a key")
    revoke.add_argument("key_id")


async def _run(args: argparse.Namespace, settings: Settings) -> int:
    from app.db.api_key_repository import ApiKeyRepository
    from app.db.migrate import upgrade_to_head
    from app.db.session import create_engine, create_session_factory
    from app.services.auth import AuthService

    await asyncio.to_thread(upgrade_to_head, settings.database_url)
    engine = create_engine(settings.database_url)
    try:
        auth = AuthService(settings.auth, ApiKeyRepository(create_session_factory(engine)))
        if args.command == "create":
            created = await auth.create(args.name, is_admin=args.admin)
            print(f"id:    {created.key.id}")
            print(f"name:  {created.key.name}{' (admin)' if created.key.is_admin else ''}")
            print(f"key:   {created.plaintext}")
            print("Store the key now: only its hash is kept.", file=sys.stderr)
        elif args.command == "list":
            for key in await auth.list(include_revoked=args.all):
                state = f"revoked {key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else "active"
                used = f"{key.last_used_at:%Y-%m-%d %H:%M}" if key.last_used_at else "never"
                admin = "admin" if key.is_admin else "user"
                print(f"{key.id}  {key.prefix}…  {admin:5}  {state:24}  last used {used}  {key.name}")
        elif args.command == "revoke":
            if await auth.revoke(args.key_id) is None:
                print(f"no API key {args.key_id}", file=sys.stderr)
                return 1
            print(f"revoked {args.key_id}")
        return 0
    finally:
        await engine.dispose()


def run(args: argparse.Namespace, settings: Settings | None) -> int:
    return asyncio.run(_run(args, settings or Settings()))
