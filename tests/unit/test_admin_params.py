"""Pure functions behind the admin API's parameters (seed 003): durations, defaults, upper bounds,
field checks, and the key material (plaintext, name, token)."""

from __future__ import annotations

import math
import re
import time

import pytest

from gateway.admin.keys import KeyParams, UpdateKeyParams, check, given, record_fields
from gateway.admin.params import (
    NON_NEGATIVE,
    apply_defaults,
    apply_upper_bounds,
    check_non_negative,
    decode_body,
    expires_at,
    parse_duration,
)
from gateway.errors import GatewayError
from llmgw.secrets import KeyHasher, generate_key, key_name

pytestmark = pytest.mark.unit

MINUTE, HOUR, DAY = 60, 3600, 86400


# --- durations -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        # seed 003: seconds ("30s"), minutes ("30m"), hours ("30h"), days ("30d")
        ("30s", 30),
        ("30m", 30 * MINUTE),
        ("20m", 20 * MINUTE),
        ("30h", 30 * HOUR),
        ("30d", 30 * DAY),
        ("1h", HOUR),
        ("1d", DAY),
        # seed 003's "Upgrade/Downgrade Models" example sends "30min"
        ("30min", 30 * MINUTE),
        ("2w", 14 * DAY),
        ("1mo", 30 * DAY),
        ("1.5h", 90 * MINUTE),
        ("10 secs", 10),
        ("3 minutes", 3 * MINUTE),
        ("2 hours", 2 * HOUR),
        ("7 days", 7 * DAY),
        (" 5m ", 5 * MINUTE),
        ("0s", 0),
    ],
)
def test_durations_parse_to_seconds(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["5 parsecs", "", "30", "-5s", "s", "1y", "thirty days", "30 d d", "1e3s"])
def test_bad_durations_are_400_naming_the_param_and_the_value(text):
    with pytest.raises(GatewayError) as err:
        parse_duration(text, "budget_duration")
    assert err.value.status == 400
    assert err.value.param == "budget_duration"
    assert err.value.type == "invalid_request_error"
    assert repr(text) in err.value.message


@pytest.mark.parametrize("value", [30, 1.5, None, ["30s"]])
def test_a_duration_that_is_not_a_string_is_400(value):
    with pytest.raises(GatewayError) as err:
        parse_duration(value)  # type: ignore[arg-type]
    assert (err.value.status, err.value.param) == (400, "duration")


def test_expires_at_is_now_plus_the_duration_or_never():
    assert expires_at(None) is None
    before = time.time()
    at = expires_at("20m")
    assert before + 20 * MINUTE <= at <= time.time() + 20 * MINUTE


# --- default_key_generate_params -------------------------------------------------------------

# Seed 003's example (`duration:` left blank means null).
SEED_DEFAULTS = {
    "max_budget": 1.5,
    "models": ["azure-gpt-3.5"],
    "duration": None,
    "metadata": {"setting": "default"},
    "team_id": "core-infra",
}


def test_defaults_fill_every_param_the_request_did_not_give():
    values: dict = {}
    apply_defaults(values, SEED_DEFAULTS, given=set())
    assert values == {
        "max_budget": 1.5,
        "models": ["azure-gpt-3.5"],
        "metadata": {"setting": "default"},
        "team_id": "core-infra",
    }
    # A blank default is null: nothing to fill, the key never expires.
    assert values.get("duration") is None


def test_defaults_never_override_a_given_param_even_an_explicit_null():
    values = {"max_budget": 7.0, "models": ["gpt-4"], "team_id": None}
    apply_defaults(values, SEED_DEFAULTS, given=set(values))
    assert values == {"max_budget": 7.0, "models": ["gpt-4"], "team_id": None, "metadata": {"setting": "default"}}


def test_no_defaults_change_nothing():
    values = {"models": ["gpt-4"]}
    apply_defaults(values, {}, given={"models"})
    assert values == {"models": ["gpt-4"]}


# --- upperbound_key_generate_params ----------------------------------------------------------

SEED_BOUNDS = {"max_budget": 100, "duration": "30d"}


def test_a_value_above_its_upper_bound_is_lowered_to_the_bound():
    # seed 003: "Send a /key/generate request with max_budget=200 ... created with max_budget=100"
    values = {"max_budget": 200.0, "duration": "60d"}
    apply_upper_bounds(values, SEED_BOUNDS)
    assert values == {"max_budget": 100, "duration": "30d"}


def test_values_within_their_bounds_are_kept():
    values = {"max_budget": 99.5, "duration": "20m"}
    apply_upper_bounds(values, SEED_BOUNDS)
    assert values == {"max_budget": 99.5, "duration": "20m"}
    values = {"max_budget": 100.0, "duration": "720h"}  # exactly at the bound (720h == 30d)
    apply_upper_bounds(values, SEED_BOUNDS)
    assert values == {"max_budget": 100.0, "duration": "720h"}


def test_durations_are_compared_in_seconds_not_as_text():
    values = {"duration": "5w"}  # 35 days, and "5w" < "30d" as strings
    apply_upper_bounds(values, SEED_BOUNDS)
    assert values["duration"] == "30d"
    values = {"duration": "999s"}  # "999s" > "30d" as strings, but only 16 minutes
    apply_upper_bounds(values, SEED_BOUNDS)
    assert values["duration"] == "999s"


def test_an_explicit_null_means_unlimited_and_is_lowered_to_the_bound():
    values = {"max_budget": None, "duration": None, "budget_duration": None}
    apply_upper_bounds(values, {**SEED_BOUNDS, "budget_duration": "1d"})
    assert values == {"max_budget": 100, "duration": "30d", "budget_duration": "1d"}


def test_a_param_left_out_is_unlimited_and_is_bounded_too():
    # seed 003: the bound holds "for all /key/generate requests", also those that leave the param out.
    values = {"models": ["gpt-4"]}
    apply_upper_bounds(values, SEED_BOUNDS)
    assert values == {"models": ["gpt-4"], "max_budget": 100, "duration": "30d"}


@pytest.mark.parametrize(
    ("name", "asked", "bound"),
    [("tpm_limit", 5000, 1000), ("rpm_limit", 90, 60), ("max_parallel_requests", 8, 4), ("soft_budget", 50.0, 10)],
)
def test_numeric_params_are_bounded(name, asked, bound):
    values = {name: asked}
    apply_upper_bounds(values, {name: bound})
    assert values == {name: bound}


def test_bounds_after_defaults_lower_a_default_that_is_too_large():
    # KeyService.generate applies the defaults first, then the bounds.
    values: dict = {}
    apply_defaults(values, {"max_budget": 500, "duration": "90d"}, given=set())
    apply_upper_bounds(values, SEED_BOUNDS)
    assert values == {"max_budget": 100, "duration": "30d"}


# --- field checks ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", NON_NEGATIVE)
def test_negative_budgets_and_limits_are_400_naming_the_field(name):
    with pytest.raises(GatewayError) as err:
        check_non_negative({name: -1})
    assert (err.value.status, err.value.param) == (400, name)
    check_non_negative({name: 0})  # zero is a valid (if strict) limit


def test_a_negative_per_model_budget_is_400():
    with pytest.raises(GatewayError) as err:
        check_non_negative({"model_max_budget": {"gpt-4": 0.5, "gpt-5": -0.01}})
    assert (err.value.status, err.value.param) == (400, "model_max_budget")
    assert "gpt-5" in err.value.message


@pytest.mark.parametrize(
    ("values", "param"),
    [
        ({"max_budget": math.nan}, "max_budget"),
        ({"soft_budget": math.inf}, "soft_budget"),
        ({"duration": "5 parsecs"}, "duration"),
        ({"budget_duration": "monthly"}, "budget_duration"),
        ({"max_budget": -3.0}, "max_budget"),
    ],
)
def test_key_param_check_names_the_bad_field(values, param):
    with pytest.raises(GatewayError) as err:
        check(values)
    assert (err.value.status, err.value.param) == (400, param)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b'{"models": "gpt-4"}', "models"),
        (b'{"duration": 30}', "duration"),
        (b'{"tpm_limit": "many"}', "tpm_limit"),
        (b'{"max_parallel_requests": 1.5}', "max_parallel_requests"),
        (b'{"metadata": ["not", "a", "dict"]}', "metadata"),
        (b'{"blocked": "yes"}', "blocked"),
        (b'{"max_budget": "ten"}', "max_budget"),
    ],
)
def test_wrong_types_are_400_naming_the_field(body, param):
    with pytest.raises(GatewayError) as err:
        decode_body(body, KeyParams)
    assert (err.value.status, err.value.param) == (400, param)


@pytest.mark.parametrize(
    ("body", "prefix"), [(b'{"aliases": {"a": 1}}', "aliases"), (b'{"model_max_budget": {"gpt-4": "x"}}', "model_max_budget")]
)
def test_wrong_types_inside_a_mapping_name_the_mapping(body, prefix):
    with pytest.raises(GatewayError) as err:
        decode_body(body, KeyParams)
    assert err.value.status == 400 and err.value.param.startswith(prefix)


def test_bad_json_is_400_and_an_empty_body_is_an_empty_request():
    for body in (b"{", b"not json"):
        with pytest.raises(GatewayError) as err:
            decode_body(body, KeyParams)
        assert err.value.status == 400
    assert given(decode_body(b"", KeyParams)) == {}
    assert given(decode_body(b"  ", KeyParams)) == {}


def test_update_needs_the_key():
    with pytest.raises(GatewayError) as err:
        decode_body(b'{"models": ["gpt-4"]}', UpdateKeyParams)
    assert (err.value.status, err.value.param) == (400, "key")


def test_given_tells_unset_apart_from_null():
    params = decode_body(b'{"models": null, "key_alias": "a", "max_budget": 0}', KeyParams)
    assert given(params) == {"models": None, "key_alias": "a", "max_budget": 0}


def test_record_fields_turn_duration_into_expires_and_null_collections_into_empty_ones():
    before = time.time()
    fields = record_fields(
        {
            "duration": "30s",
            "models": None,
            "metadata": None,
            "aliases": None,
            "max_budget": None,
            "budget_duration": "1d",
            "blocked": None,
            "spend": None,
        }
    )
    assert before + 30 <= fields["expires"] <= time.time() + 30
    assert fields["models"] == [] and fields["metadata"] == {} and fields["aliases"] == {}
    assert fields["max_budget"] is None
    assert before + DAY <= fields["budget_reset_at"] <= time.time() + DAY
    assert "blocked" not in fields and "spend" not in fields and "duration" not in fields
    assert record_fields({"duration": None})["expires"] is None
    assert "expires" not in record_fields({"models": ["gpt-4"]})


# --- key material ----------------------------------------------------------------------------


def test_generated_keys_are_sk_prefixed_random_and_named_by_their_last_four_characters():
    keys = {generate_key() for _ in range(200)}
    assert len(keys) == 200
    for key in keys:
        assert re.fullmatch(r"sk-[A-Za-z0-9_-]{22}", key)
        assert key_name(key) == f"sk-...{key[-4:]}"


def test_the_token_is_an_hmac_under_the_server_secret():
    key = generate_key()
    a, b = KeyHasher(b"server-secret-one-0123"), KeyHasher(b"server-secret-two-0123")
    assert a.token(key) == a.token(key)
    assert re.fullmatch(r"[0-9a-f]{64}", a.token(key))
    assert a.token(key) != b.token(key)
    assert key not in a.token(key) and key[3:] not in a.token(key)
