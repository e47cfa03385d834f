"""Leasing queue rows to one node at a time, the same way on SQLite, MariaDB/MySQL and PostgreSQL.

A *due* query selects candidate ids (oldest first, limited); the claim writes the lease (holder,
fencing token, expiry) on the rows it gets, and no other node gets the same rows:

* SQLite serialises writers, so one ``UPDATE … WHERE id IN (due) RETURNING`` claims atomically;
* MariaDB/MySQL and PostgreSQL lock the due rows with ``FOR UPDATE SKIP LOCKED`` (concurrent
  claimers skip each other's rows instead of waiting), then update them in the same transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Row, Select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute


@dataclass(frozen=True)
class Lease:
    """One claim: its holder, its fencing token and when it lapses."""

    holder: str
    token: str
    expires_at: datetime

    @classmethod
    def new(cls, holder: str, seconds: float, now: datetime) -> Lease:
        return cls(holder, uuid.uuid4().hex, now + timedelta(seconds=seconds))

    def values(self) -> dict[str, Any]:
        """The columns a leased row carries (``claimed_by``, ``claim_token``, ``lease_expires_at``)."""
        return {"claimed_by": self.holder, "claim_token": self.token, "lease_expires_at": self.expires_at}


async def lease_due_rows(
    session: AsyncSession,
    table: Any,
    *,
    due: Select[Any],
    still_due: Sequence[ColumnElement[bool]],
    columns: Sequence[InstrumentedAttribute[Any]],
    lease: Lease,
) -> Sequence[Row[*tuple[Any, ...]]]:
    """Write ``lease`` on the rows of ``table`` (a mapped class with an ``id`` primary key) that
    ``due`` selects by id, within the caller's transaction; returns their ``columns`` (``id``
    first). ``still_due`` repeats ``due``'s conditions for the single-statement SQLite path."""
    if session.get_bind().dialect.name == "sqlite":
        # One statement: SQLite serialises writers, so nobody claims in between.
        return (
            await session.execute(
                update(table)
                .where(table.id.in_(due), *still_due)
                .values(lease.values())
                .returning(*columns)
                .execution_options(synchronize_session=False)
            )
        ).all()
    rows = (await session.execute(due.with_only_columns(*columns).with_for_update(skip_locked=True))).all()
    if rows:
        await session.execute(
            update(table)
            .where(table.id.in_([row[0] for row in rows]))
            .values(lease.values())
            .execution_options(synchronize_session=False)
        )
    return rows
