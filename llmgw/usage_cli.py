"""`llmgw usage tail` (usage events live, as JSON lines) and `llmgw sql "<query>"` (read-only SQL
on the usage store, through metering's query service)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from collections.abc import Sequence

import nats
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from llmgw.contracts import QueryResult, Subjects
from metering.client import query_metering

MAX_CELL = 60  # a table cell is cut to this many characters (`--json` prints everything)


def add_usage_commands(sub: argparse._SubParsersAction) -> None:
    usage = sub.add_parser("usage", help="usage events on the bus")
    usage_sub = usage.add_subparsers(dest="action", required=True)
    tail = usage_sub.add_parser("tail", help="print usage events as they happen, one JSON object a line")
    _bus_flags(tail)
    tail.add_argument("--provider", default="*", help="only this provider's events")
    tail.add_argument("--status", default="*", help="only events of this status (success, upstream_error, ...)")
    tail.add_argument("-n", "--count", type=int, default=0, help="stop after this many events (0: until Ctrl-C)")
    tail.set_defaults(func=run_tail)

    sql = sub.add_parser("sql", help="run read-only SQL on the usage store (ClickHouse) through metering")
    _bus_flags(sql)
    sql.add_argument("query", help='for example "SELECT model_group, sum(cost) FROM usage GROUP BY model_group"')
    sql.add_argument(
        "--param", action="append", default=[], metavar="NAME=VALUE", help="bind {NAME:Type} in the query (repeatable)"
    )
    sql.add_argument("--json", action="store_true", help="print rows as JSON objects, one a line")
    sql.add_argument("--timeout", type=float, default=30.0)
    sql.set_defaults(func=run_sql)


def _bus_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--nats-url", default=os.environ.get("LLMGW_NATS_URL", "nats://127.0.0.1:4222"))
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
        try:
            sub = await js.subscribe(
                subjects.usage(args.provider, args.status),
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
            sys.stdout.write(msg.data.decode("utf-8", errors="replace") + "\n")
            sys.stdout.flush()
            seen += 1
        return 0
    finally:
        await nc.close()


def _stop_on_signals() -> asyncio.Event:
    """Set on Ctrl-C or SIGTERM (also when started in the background, where SIGINT is ignored)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


# ------------------------------------------------------------------------------------------- sql


def run_sql(args: argparse.Namespace) -> int:
    try:
        parameters = parse_params(args.param)
    except ValueError as exc:
        print(f"llmgw sql: {exc}", file=sys.stderr)
        return 2
    try:
        result = asyncio.run(_sql(args, parameters))
    except KeyboardInterrupt:
        return 130
    if result is None:
        return 1
    if result.error:
        print(f"llmgw sql: {result.error}", file=sys.stderr)
        return 1
    if args.json:
        for row in result.rows:
            print(json.dumps(dict(zip(result.columns, row)), ensure_ascii=False))
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


async def _sql(args: argparse.Namespace, parameters: dict[str, object]) -> QueryResult | None:
    nc = await _connect(args.nats_url)
    if nc is None:
        return None
    try:
        return await query_metering(nc, Subjects(args.prefix), args.query, parameters, timeout=args.timeout)
    except NoRespondersError:
        print(f"llmgw sql: no metering process answers on prefix {args.prefix!r} (start `llmgw metering`)", file=sys.stderr)
    except NatsTimeoutError:
        print(f"llmgw sql: metering did not answer within {args.timeout:g}s", file=sys.stderr)
    finally:
        await nc.close()
    return None


def format_table(columns: list[str], rows: list[list[object]]) -> str:
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    numeric = [
        all(isinstance(row[i], (int, float)) and not isinstance(row[i], bool) for row in rows if row[i] is not None)
        for i in range(len(columns))
    ]

    def line(values: list[str]) -> str:
        return "  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)).rstrip()

    out = [line(columns), "  ".join("-" * w for w in widths)] + [line(r) for r in cells]
    out.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return "\n".join(out)


def _cell(value: object) -> str:
    text = "NULL" if value is None else value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = text.replace("\n", " ")
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"


async def _connect(url: str):
    async def quiet(exc: Exception) -> None:  # nats-py would print a traceback per attempt
        pass

    try:
        # max_reconnect_attempts > 0: with 0, nats-py retries a refused first connect forever.
        return await nats.connect(
            url, connect_timeout=5, allow_reconnect=True, max_reconnect_attempts=3, reconnect_time_wait=0.5, error_cb=quiet
        )
    except Exception as exc:
        print(f"llmgw: cannot connect to NATS at {url}: {str(exc) or type(exc).__name__}", file=sys.stderr)
        return None


def main(argv: list[str] | None = None) -> None:
    """`python -m llmgw.usage_cli usage tail` / `... sql "<query>"` (what `llmgw` wires in)."""
    parser = argparse.ArgumentParser(prog="llmgw")
    add_usage_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    sys.exit(args.func(args))


if __name__ == "__main__":
    main()
