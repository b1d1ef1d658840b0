"""The OpenAPI entries of the reconciliation routes (`/spend/reconciliation` and its admin keys),
merged into the document by gateway/openapi.py; answers written out as the handlers write them."""

from __future__ import annotations

from typing import Any

from gateway.admin.reconciliation import SetAdminKey
from gateway.openapi_ops import admin_get, admin_post, query
from gateway.openapi_schemas import NULLABLE_STRING, obj
from llmgw.contracts import RECONCILED_PROVIDERS, RECONCILIATION_COLUMNS, STALE_PRICE_COLUMNS

RECONCILE_REQUEST_TYPES = (SetAdminKey,)

STRING, INTEGER, NUMBER = {"type": "string"}, {"type": "integer"}, {"type": "number"}
NULLABLE_INTEGER, NULLABLE_NUMBER = {"type": ["integer", "null"]}, {"type": ["number", "null"]}
DATE = {"type": "string", "format": "date"}
PROVIDER = {"enum": list(RECONCILED_PROVIDERS)}

_LINE_TYPES = {
    "provider": STRING,
    "model": STRING,
    "hour": STRING,
    "kind": {"enum": ["ok", "drift", "unbilled", "outside"]},
    "account": STRING,
    "metered_requests": INTEGER,
    "billed_requests": NULLABLE_INTEGER,
    "metered_input_tokens": INTEGER,
    "billed_input_tokens": INTEGER,
    "metered_output_tokens": INTEGER,
    "billed_output_tokens": INTEGER,
    "metered_cost": NUMBER,
    "billed_cost": NULLABLE_NUMBER,
    "token_drift": INTEGER,
    "token_drift_relative": NULLABLE_NUMBER,
    "cost_drift": NULLABLE_NUMBER,
    "cost_drift_relative": NULLABLE_NUMBER,
}
_STALE_TYPES = {
    "provider": STRING,
    "model": STRING,
    "token_type": STRING,
    "day": STRING,
    "tokens": INTEGER,
    "provider_price": NUMBER,
    "llmgw_price": NUMBER,
    "difference_relative": NUMBER,
}

_LINE = obj(list(RECONCILIATION_COLUMNS), **_LINE_TYPES)
_STALE = obj(list(STALE_PRICE_COLUMNS), **_STALE_TYPES)
_SUMMARY_FIELDS = ("ok", "drift", "unbilled", "outside", "stale_prices")
_SUMMARY = obj(
    [*_SUMMARY_FIELDS, "metered_cost", "billed_cost", "outside_cost"],
    **dict.fromkeys(_SUMMARY_FIELDS, INTEGER),
    metered_cost=NUMBER,
    billed_cost=NUMBER,
    outside_cost=NUMBER,
)

RECONCILE_RESPONSE_SCHEMAS: dict[str, dict[str, Any]] = {
    "Reconciliation": obj(
        ["start", "end", "threshold", "summary", "lines", "outside_traffic", "stale_prices"],
        start=STRING,
        end=STRING,
        threshold=NUMBER,
        summary=_SUMMARY,
        lines={"type": "array", "items": _LINE},
        outside_traffic={"type": "array", "items": _LINE},
        stale_prices={"type": "array", "items": _STALE},
    ),
    "AdminKeySet": obj(["provider", "admin_key"], provider=STRING, admin_key=STRING),
    "AdminKeyList": obj(
        ["data"],
        data={
            "type": "array",
            "items": obj(["provider", "admin_key"], provider=STRING, admin_key=STRING, updated_at=NULLABLE_STRING),
        },
    ),
}


def reconcile_paths() -> dict[str, Any]:
    return {
        "/spend/reconciliation": admin_get(
            "llmgw's metered requests, tokens and cost against the provider's own usage and cost reports, per"
            " provider, model and hour; outside traffic; stale prices.",
            [
                query("start_date", DATE),
                query("end_date", DATE),
                query("threshold", {"type": "number", "minimum": 0, "maximum": 1000}),
                query("provider", PROVIDER),
            ],
            "Reconciliation",
        ),
        "/spend/reconciliation/credentials": {
            "get": admin_get("The providers' admin keys the reports are read with (masked).", [], "AdminKeyList")["get"],
            "post": admin_post(
                "Set a provider's admin key for its usage and cost reports (stored encrypted).", "SetAdminKey", "AdminKeySet"
            )["post"],
        },
    }
