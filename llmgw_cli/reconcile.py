"""`llmgw reconcile`: llmgw's metering against the providers' own usage and cost reports, as
`GET /spend/reconciliation` of a running gateway answers it (per provider, model and hour; the
outside traffic; the stale prices)."""

from __future__ import annotations

import argparse
import os
from typing import Any

from llmgw_cli.admin_client import AdminClient
from llmgw_cli.output import CommandError, format_table, pretty_json

DISAGREES = 3  # the exit code of `--check` when something does not agree

LINE_COLUMNS = (
    ("hour", "hour"),
    ("provider", "provider"),
    ("model", "model"),
    ("kind", "kind"),
    ("metered_requests", "req llmgw"),
    ("billed_requests", "req billed"),
    ("metered_tokens", "tokens llmgw"),
    ("billed_tokens", "tokens billed"),
    ("token_drift_percent", "tokens drift %"),
    ("metered_cost", "cost llmgw"),
    ("billed_cost", "cost billed"),
    ("cost_drift_percent", "cost drift %"),
)
OUTSIDE_COLUMNS = (
    ("hour", "hour"),
    ("provider", "provider"),
    ("account", "key or project"),
    ("model", "model"),
    ("billed_requests", "requests"),
    ("billed_tokens", "tokens"),
    ("billed_cost", "cost"),
)
STALE_COLUMNS = (
    ("day", "day"),
    ("provider", "provider"),
    ("model", "model"),
    ("token_type", "tokens"),
    ("provider_price", "billed $/1M"),
    ("llmgw_price", "llmgw $/1M"),
    ("difference_percent", "difference %"),
)


def add_reconcile_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "reconcile",
        help="compare llmgw's metered spend with the providers' own usage and cost reports",
        description="Compare what llmgw metered with what the providers billed (their usage and cost"
        " reports, read by metering's reconciler), per provider, model and hour; list traffic billed"
        " outside the gateway and prices in llmgw's table that no longer match.",
    )
    p.add_argument("--url", default=os.environ.get("LLMGW_URL", "http://127.0.0.1:4000"), help="the gateway (LLMGW_URL)")
    p.add_argument("--master-key", default=os.environ.get("LLMGW_MASTER_KEY"), help="the master key (LLMGW_MASTER_KEY)")
    p.add_argument("--start-date", help="first UTC day, YYYY-MM-DD (default: yesterday)")
    p.add_argument("--end-date", help="last UTC day, YYYY-MM-DD (default: today)")
    p.add_argument("--threshold", help="relative drift shown as drift (default 0.02: 2 %%)")
    p.add_argument("--provider", choices=("openai", "anthropic"), help="only this provider")
    p.add_argument("--all", action="store_true", help="list the lines that agree too (default: only those that do not)")
    p.add_argument("--json", action="store_true", help="print the API's JSON answer")
    p.add_argument(
        "--check",
        action="store_true",
        help=f"exit {DISAGREES} when a line drifts, is unbilled, traffic came from outside or a price is stale (for cron and CI)",
    )
    p.set_defaults(func=run_reconcile)


def _percent(value: Any) -> Any:
    return None if value is None else round(float(value) * 100, 2)


def _row(entry: dict[str, Any], columns: tuple[tuple[str, str], ...]) -> list[Any]:
    derived = {
        **entry,
        "metered_tokens": (entry.get("metered_input_tokens") or 0) + (entry.get("metered_output_tokens") or 0),
        "billed_tokens": (entry.get("billed_input_tokens") or 0) + (entry.get("billed_output_tokens") or 0),
        "token_drift_percent": _percent(entry.get("token_drift_relative")),
        "cost_drift_percent": _percent(entry.get("cost_drift_relative")),
        "difference_percent": _percent(entry.get("difference_relative")),
        "account": entry.get("account") or "(llmgw's)",  # billed on llmgw's keys, for a model or hour it sent nothing
    }
    return [derived.get(name) for name, _ in columns]


def render(body: dict[str, Any], everything: bool = False) -> str:
    """The report as text: a summary line, then a table per section that has rows."""
    s = body["summary"]
    out = [
        f"reconciliation {body['start']} .. {body['end']} (threshold {body['threshold'] * 100:g} %):"
        f" {s['ok']} ok, {s['drift']} drift, {s['unbilled']} unbilled, {s['outside']} outside traffic,"
        f" {s['stale_prices']} stale prices; metered ${s['metered_cost']:.6f}, billed ${s['billed_cost']:.6f},"
        f" outside ${s['outside_cost']:.6f}"
    ]
    lines = [line for line in body["lines"] if everything or line["kind"] != "ok"]
    if lines:
        out += ["", "lines" + ("" if everything else " that do not agree") + ":"]
        out.append(format_table([h for _, h in LINE_COLUMNS], [_row(e, LINE_COLUMNS) for e in lines]))
    if body["outside_traffic"]:
        out += ["", "outside traffic (billed, never sent through llmgw):"]
        out.append(format_table([h for _, h in OUTSIDE_COLUMNS], [_row(e, OUTSIDE_COLUMNS) for e in body["outside_traffic"]]))
    if body["stale_prices"]:
        out += ["", "stale prices (llmgw's table against what the provider charged):"]
        out.append(format_table([h for _, h in STALE_COLUMNS], [_row(e, STALE_COLUMNS) for e in body["stale_prices"]]))
    return "\n".join(out)


def run_reconcile(args: argparse.Namespace) -> int:
    if not args.master_key:
        raise CommandError("llmgw: give the gateway's master key: LLMGW_MASTER_KEY=sk-... (or --master-key)")
    fields = {
        name: value
        for name, value in (
            ("start_date", args.start_date),
            ("end_date", args.end_date),
            ("threshold", args.threshold),
            ("provider", args.provider),
        )
        if value
    }
    answer = AdminClient(args.url, args.master_key).call("GET", "/spend/reconciliation", fields)
    print(pretty_json(answer.raw) if args.json else render(answer.body, args.all))
    return DISAGREES if args.check and disagrees(answer.body) else 0


def disagrees(body: dict[str, Any]) -> bool:
    s = body["summary"]
    return bool(s["drift"] or s["unbilled"] or s["outside"] or s["stale_prices"])
