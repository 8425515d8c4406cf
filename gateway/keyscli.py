"""Operators' commands on the system of record, without curl:

    python -m gateway migrate [--config FILE]
    python -m gateway keys create --name NAME [--consumer C] [--tier T] [--models a,b] [--usd-per-day X]
                                  [--usd-per-month Y] [--priority P] [--permissions chat,models]
                                  [--expires 2027-01-01T00:00:00Z] [--tag team=search ...]
    python -m gateway keys list [--revoked]
    python -m gateway keys show KEY_ID
    python -m gateway keys revoke KEY_ID

The database is ``database.url`` of the configuration (``--config`` or $GATEWAY_CONFIG), or $DATABASE_URL. The
commands write the database directly, with an audit record naming the operating-system user and host; a change
is announced on Redis when the configuration names one ($REDIS_URL), and every replica reads it within its
refresh interval regardless. Output is JSON; the exit status is 0, or 1 with an OpenAI-shaped error on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import socket
import sys
from typing import Any

import orjson
from pydantic import ValidationError

from gateway.clock import SystemClock
from gateway.config import ConfigError, Settings
from gateway.db.engine import create_engine, redact
from gateway.db.migrate import upgrade
from gateway.environ import settings_from_env
from gateway.errors import GatewayError, InvalidRequest
from gateway.keys.keyadmin import KeyAdmin, invalid_field
from gateway.keys.model import KeyCreate
from gateway.observability.logs import EventLog
from gateway.records import build_records


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", help="YAML configuration (default: $GATEWAY_CONFIG)")
    p = argparse.ArgumentParser(prog="python -m gateway", description="Faultline's database and virtual keys.")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="apply the database migrations", parents=[common])
    keys = sub.add_parser("keys", help="manage virtual keys").add_subparsers(dest="action", required=True)
    c = keys.add_parser("create", help="create a key; its secret is printed once", parents=[common])
    c.add_argument("--name", required=True)
    c.add_argument("--consumer")
    c.add_argument("--tier")
    c.add_argument("--models", help="comma-separated allowlist")
    c.add_argument("--usd-per-day", type=float)
    c.add_argument("--usd-per-month", type=float)
    c.add_argument("--priority", type=int)
    c.add_argument("--permissions", help="comma-separated: chat, models, pin")
    c.add_argument("--expires", help="ISO 8601 date-time with a time zone")
    c.add_argument("--tag", action="append", default=[], help="KEY=VALUE, repeatable")
    ls = keys.add_parser("list", help="list the keys", parents=[common])
    ls.add_argument("--revoked", action="store_true", help="include revoked keys")
    keys.add_parser("show", help="one key", parents=[common]).add_argument("key_id")
    keys.add_parser("revoke", help="revoke a key", parents=[common]).add_argument("key_id")
    return p


def _spec(args: argparse.Namespace) -> KeyCreate:
    raw: dict[str, Any] = {"name": args.name}
    for field in ("consumer", "tier", "priority"):
        if getattr(args, field) is not None:
            raw[field] = getattr(args, field)
    if args.models:
        raw["models"] = [m.strip() for m in args.models.split(",") if m.strip()]
    if args.permissions:
        raw["permissions"] = [m.strip() for m in args.permissions.split(",") if m.strip()]
    if args.usd_per_day is not None or args.usd_per_month is not None:
        raw["budget"] = {"usd_per_day": args.usd_per_day, "usd_per_month": args.usd_per_month}
    if args.expires:
        raw["expires_at"] = args.expires
    tags = {}
    for t in args.tag:
        k, sep, v = t.partition("=")
        if not sep or not k:
            raise InvalidRequest(f"--tag takes KEY=VALUE, got {t!r}.", param="tag")
        tags[k] = v
    raw["tags"] = tags
    try:
        return KeyCreate.model_validate(raw)
    except ValidationError as exc:
        raise invalid_field(exc) from None


class _Runtime:
    """What :class:`KeyAdmin` needs of an app, for a process that serves nothing."""

    def __init__(self, settings: Settings, records: Any) -> None:
        self.settings = settings
        self.records = records
        self.clock = SystemClock()


async def run(args: argparse.Namespace, settings: Settings) -> Any:
    url = settings.database.url
    if not url:
        raise ConfigError("no database: set database.url in the configuration or $DATABASE_URL")
    if args.command == "migrate":
        engine = create_engine(url, timeout_s=settings.database.timeout_s)
        try:
            await upgrade(engine)
        finally:
            await engine.dispose()
        return {"migrated": redact(url)}
    from gateway.state import connect_state

    state = connect_state(settings.state.redis_url) if settings.state.redis_url else None
    log = EventLog(SystemClock(), stream=sys.stderr, level="error")
    records = build_records(settings, clock=SystemClock(), log=log, state=state)
    assert records is not None
    actor = f"cli:{getpass.getuser()}@{socket.gethostname()}"
    admin = KeyAdmin(_Runtime(settings, records))
    try:
        await upgrade(records.engine)
        if args.action == "create":
            return (await admin.create(_spec(args), actor))[1]
        if args.action == "list":
            return (await admin.list({"revoked": "true" if args.revoked else "false", "limit": "1000"}))[1]
        if args.action == "show":
            return (await admin.get(args.key_id))[1]
        return (await admin.revoke(args.key_id, actor))[1]
    finally:
        await records.engine.dispose()
        if state is not None:
            await state.aclose()


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = settings_from_env(args.config)
        out = asyncio.run(run(args, settings))
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    except GatewayError as exc:
        print(exc.to_json().decode(), file=sys.stderr)
        return 1
    sys.stdout.write(orjson.dumps(out, option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0
