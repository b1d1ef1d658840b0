"""`llmgw usage tail` (usage events live, as JSON lines) and `llmgw sql "<query>" | FILE.sql`
(read-only SQL on the usage store, through metering's query service)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

import msgspec
import nats
from nats.aio.client import Client as NatsClient
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from llmgw.contracts import QueryResult, Subjects, decode_usage_batch, encode_json
from llmgw.metering_query import query_metering
from llmgw.settings import nats_servers
from llmgw_cli.output import format_table, json_text
from llmgw_cli.sql_files import describe_missing, missing


def add_usage_commands(sub: argparse._SubParsersAction) -> None:
    usage = sub.add_parser("usage", help="usage events on the bus")
    usage_sub = usage.add_subparsers(dest="action", required=True)
    tail = usage_sub.add_parser("tail", help="print usage events as they happen, one JSON object a line")
    _bus_flags(tail)
    tail.add_argument("--provider", default="*", help="only this provider's events")
    tail.add_argument("--status", default="*", help="only events of this status (success, upstream_error, ...)")
    tail.add_argument("-n", "--count", type=int, default=0, help="stop after this many events (0: until Ctrl-C)")
    tail.set_defaults(func=run_tail)

    sql = sub.add_parser(
        "sql",
        help="run read-only SQL on the usage store (ClickHouse) through metering",
        description="Run a read-only query, given as text or as a .sql file (metering/sql/ holds ready ones;"
        " a file's comment header says what its parameters mean).",
    )
    _bus_flags(sql)
    sql.add_argument(
        "query",
        help='the SQL, e.g. "SELECT model_group, sum(cost) FROM usage GROUP BY model_group", or a .sql file',
    )
    sql.add_argument(
        "--param", action="append", default=[], metavar="NAME=VALUE", help="bind {NAME:Type} in the query (repeatable)"
    )
    sql.add_argument("--json", action="store_true", help="print rows as JSON objects, one a line")
    sql.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the answer (30)")
    sql.set_defaults(func=run_sql)


def _bus_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--nats-url",
        default=os.environ.get("LLMGW_NATS_URL", "nats://127.0.0.1:4222"),
        help="the gateway's NATS (LLMGW_NATS_URL)",
    )
    parser.add_argument("--prefix", default=os.environ.get("LLMGW_BUS_PREFIX", "llmgw"), help="bus prefix")


# ------------------------------------------------------------------------------------ usage tail


def run_tail(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_tail(args))
    except KeyboardInterrupt:
        return 0


async def _tail(args: argparse.Namespace) -> int:
    subjects = Subjects(args.prefix)
    nc = await _connect(args.nats_url)
    if nc is None:
        return 1
    try:
        js = nc.jetstream()
        # An ephemeral consumer of new events only, gone when we are (ordered: no acks, no gaps).
        # Every usage subject: a worker's batches travel on one subject, whatever their events'
        # provider and status.
        try:
            sub = await js.subscribe(
                subjects.usage_wildcard,
                stream=subjects.usage_stream,
                ordered_consumer=True,
                config=ConsumerConfig(deliver_policy=DeliverPolicy.NEW, ack_policy=AckPolicy.NONE),
            )
        except NotFoundError:
            print(
                f"llmgw: no stream {subjects.usage_stream} (is metering or a worker running with prefix {args.prefix!r}?)",
                file=sys.stderr,
            )
            return 1
        print(f"# tailing {subjects.usage(args.provider, args.status)} (Ctrl-C to stop)", file=sys.stderr, flush=True)
        stopping = _stop_on_signals()
        seen = 0
        while (not args.count or seen < args.count) and not stopping.is_set():
            try:
                msg = await sub.next_msg(timeout=0.25)
            except NatsTimeoutError:
                if nc.is_closed:
                    print("llmgw: lost the connection to NATS", file=sys.stderr)
                    return 1
                continue
            for line in event_lines(subjects, msg.subject, msg.data, args.provider, args.status):
                if args.count and seen >= args.count:
                    break
                sys.stdout.write(line + "\n")
                seen += 1
            sys.stdout.flush()
        return 0
    finally:
        await nc.close()


def event_lines(subjects: Subjects, subject: str, data: bytes, provider: str, status: str) -> list[str]:
    """The lines of one usage message's events (a worker's batch holds several) of `provider` and
    `status` ("*": any)."""
    if subject != subjects.usage_batch:
        _, _, rest = subject.partition(f"{subjects.prefix}.usage.")
        on_provider, _, on_status = rest.partition(".")
        return [event_line(data)] if provider in ("*", on_provider) and status in ("*", on_status) else []
    try:
        events = decode_usage_batch(data).events
    except msgspec.DecodeError:
        return [data.decode("utf-8", errors="replace")]
    return [event_line(encode_json(e)) for e in events if provider in ("*", e.provider) and status in ("*", e.status)]


def event_line(data: bytes) -> str:
    """A usage event as one JSON line, its amounts without exponents (`"cost":0.00000025`)."""
    try:
        return json_text(msgspec.json.decode(data))
    except msgspec.DecodeError:
        return data.decode("utf-8", errors="replace")


def _stop_on_signals() -> asyncio.Event:
    """Set on Ctrl-C or SIGTERM (also when started in the background, where SIGINT is ignored)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


# ------------------------------------------------------------------------------------------- sql


def read_query(query: str) -> tuple[str, str]:
    """(the SQL, how to name it): the text given, or the contents of the .sql file it names."""
    path = Path(query)
    if query.endswith(".sql") or ("\n" not in query and path.is_file()):
        try:
            return path.read_text(), str(path)
        except OSError as exc:
            raise ValueError(f"cannot read {query}: {exc.strerror}") from None
    return query, "the query"


def run_sql(args: argparse.Namespace) -> int:
    try:
        parameters = parse_params(args.param)
        sql, where = read_query(args.query)
    except ValueError as exc:
        print(f"llmgw sql: {exc}", file=sys.stderr)
        return 2
    absent = missing(sql, parameters)
    if absent:
        print(describe_missing(where, absent), file=sys.stderr)
        return 2
    try:
        result = asyncio.run(_sql(args, sql, parameters))
    except KeyboardInterrupt:
        return 130
    if result is None:
        return 1
    if result.error:
        print(f"llmgw sql: {result.error}", file=sys.stderr)
        return 1
    if args.json:
        for row in result.rows:
            print(json_text(dict(zip(result.columns, row, strict=True))))
    else:
        print(format_table(result.columns, result.rows))
    return 0


def parse_params(items: Sequence[str]) -> dict[str, object]:
    """`NAME=VALUE` pairs; a VALUE that is JSON (a number, a list, ...) is sent as that JSON."""
    out: dict[str, object] = {}
    for item in items:
        name, eq, raw = item.partition("=")
        if not eq or not name:
            raise ValueError(f"--param must look like NAME=VALUE; got {item!r}")
        try:
            out[name] = json.loads(raw)
        except ValueError:
            out[name] = raw
    return out


async def _sql(args: argparse.Namespace, sql: str, parameters: dict[str, object]) -> QueryResult | None:
    nc = await _connect(args.nats_url)
    if nc is None:
        return None
    try:
        return await query_metering(nc, Subjects(args.prefix), sql, parameters, timeout=args.timeout)
    except NoRespondersError:
        print(f"llmgw sql: no metering process answers on prefix {args.prefix!r} (start `llmgw metering`)", file=sys.stderr)
    except NatsTimeoutError:
        print(f"llmgw sql: metering did not answer within {args.timeout:g}s", file=sys.stderr)
    finally:
        await nc.close()
    return None


async def _connect(url: str) -> NatsClient | None:
    async def quiet(exc: Exception) -> None:  # nats-py would print a traceback per attempt
        pass

    try:
        # max_reconnect_attempts > 0: with 0, nats-py retries a refused first connect forever.
        return await nats.connect(
            nats_servers(url),
            connect_timeout=5,
            allow_reconnect=True,
            max_reconnect_attempts=3,
            reconnect_time_wait=0.5,
            error_cb=quiet,
        )
    except Exception as exc:
        print(f"llmgw: cannot connect to NATS at {url}: {str(exc) or type(exc).__name__}", file=sys.stderr)
        return None
