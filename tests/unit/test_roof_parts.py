"""The roof's parts on their own: money text, named queries, .sql parameters, the state directory,
the key secret, heartbeats, and the command line's own flags per command."""

from __future__ import annotations

import os
import re
import stat
import time
from pathlib import Path

import msgspec
import pytest

from gateway.admin.money import with_money
from llmgw.config import ConfigError, Secret
from llmgw.liveness import heartbeat_age, heartbeat_path, touch
from llmgw.money import decimal_text, money_text
from llmgw.secrets import KeyHasher, secret_fingerprint, server_secret
from llmgw_cli.main import build_parser
from llmgw_cli.output import format_table, json_text
from llmgw_cli.sql_files import describe_missing, missing, parameters
from llmgw_cli.state import AlreadyRunningError, StateDir
from metering.named_queries import NamedQueryError, named_query

pytestmark = pytest.mark.unit

SQL_DIR = Path(__file__).resolve().parents[2] / "metering" / "sql"


# --- money -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text", "money"),
    [
        (1.08e-05, "0.0000108", "$0.0000108"),
        (1.0800000000000002e-05, "0.0000108", "$0.0000108"),
        (2.5e-07, "0.00000025", "$0.00000025"),
        (12.5, "12.5", "$12.50"),
        (0.0, "0", "$0.00"),
        (-1.2, "-1.2", "-$1.20"),
        (1e22, "10000000000000000000000", "$10000000000000000000000.00"),
    ],
)
def test_money_has_no_exponent(value, text, money):
    assert decimal_text(value) == text
    assert money_text(value) == money


def test_admin_answers_write_money_fields_positionally_and_as_numbers():
    body = {
        "spend": 1.0800000000000002e-05,
        "info": {"max_budget": 100.0, "soft_budget": None, "model_max_budget": {"gpt-4": 2.5e-07}, "tpm_limit": 5},
        "models": [{"spend": 1e-09, "total_tokens": 3}],
        "latency_ms": 1e-07,  # not money: left to the encoder
    }
    encoded = msgspec.json.encode(with_money(body)).decode()
    assert '"spend":0.0000108' in encoded and '"max_budget":100.0' in encoded and '"soft_budget":null' in encoded
    assert '"gpt-4":0.00000025' in encoded and '"spend":0.000000001' in encoded
    assert not re.search(r'"(spend|max_budget|gpt-4)":[0-9.]+e', encoded)
    decoded = msgspec.json.decode(encoded)
    assert decoded["spend"] == 1.08e-05 and isinstance(decoded["info"]["max_budget"], float)


def test_usage_tail_writes_amounts_positionally():
    from llmgw_cli.usage import event_line

    assert (
        event_line(b'{"request_id":"r1","cost":2.5e-7,"prompt_tokens":3}')
        == '{"request_id":"r1","cost":0.00000025,"prompt_tokens":3}'
    )


def test_cli_json_and_tables_write_numbers_positionally():
    assert json_text({"cost": 1.08e-05, "n": [2.5e-07]}) == '{"cost":0.0000108,"n":[0.00000025]}'
    table = format_table(["model", "cost"], [["gpt-4", 1.08e-05], ["x", 3]])
    assert "0.0000108" in table and "e-0" not in table and table.endswith("(2 rows)")


# --- named queries ---------------------------------------------------------------------------


def test_spend_logs_is_built_from_fragments_with_bound_values():
    sql, bound = named_query("spend_logs", {"limit": 5, "key_hash": "k'; DROP TABLE usage; --", "start_date": "2024-01-02"})
    assert "DROP" not in sql and "{key_hash:String}" in sql and "{start_date:Date}" in sql and "{limit:UInt32}" in sql
    assert bound == {"key_hash": "k'; DROP TABLE usage; --", "start_date": "2024-01-02", "limit": 5}
    assert "user_id = " not in sql  # (a filter not given is not in the query)


@pytest.mark.parametrize(
    ("name", "parameters", "complaint"),
    [
        ("spend_logs", {}, "limit"),
        ("spend_logs", {"limit": 1001}, "limit"),
        ("spend_logs", {"limit": True}, "limit"),
        ("spend_logs", {"limit": 1, "colour": "red"}, "unknown parameter(s) colour"),
        ("spend_logs", {"limit": 1, "end_date": "yesterday"}, "end_date"),
        ("spend_report", {"group_by": "planet"}, "group_by"),
        ("deployment_health", {}, "minutes"),
        ("deployment_health", {"minutes": 1441}, "minutes"),
        ("deployment_health", {"minutes": "5"}, "minutes"),
        ("deployment_health", {"minutes": 5, "model": "x"}, "unknown parameter(s) model"),
        ("spend_tags", {"tag": "x"}, "unknown parameter(s) tag"),
        ("spend_tags", {"start_date": "2025-13-01"}, "start_date"),
        ("drop_everything", {}, "no named query 'drop_everything'"),
    ],
)
def test_named_queries_refuse_what_they_do_not_take(name, parameters, complaint):
    with pytest.raises(NamedQueryError, match=re.escape(complaint)):
        named_query(name, parameters)


def test_spend_report_groups_by_the_column_of_each_group():
    for group_by, column in (
        ("team", "team_id"),
        ("user", "user_id"),
        ("api_key", "key_hash"),
        ("model", "model_group"),
        ("tag", "arrayJoin(tags)"),
    ):
        sql, bound = named_query("spend_report", {"group_by": group_by})
        assert f"SELECT {column} AS group_key" in sql and bound == {}


# --- .sql files ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(SQL_DIR.glob("*.sql")), ids=lambda p: p.stem)
def test_every_dashboard_query_documents_its_parameters(path: Path):
    found = parameters(path.read_text())
    assert found and all(p.meaning for p in found), found


def test_missing_parameters_are_named_with_their_meaning():
    text = (SQL_DIR / "top_keys_by_spend.sql").read_text()
    absent = missing(text, {"days"})
    assert [p.name for p in absent] == ["limit"]
    message = describe_missing("top_keys_by_spend.sql", missing(text, {}))
    assert "--param days=..." in message and "how many days back" in message and "(UInt32)" in message
    assert "--param limit=..." in message and "how many keys" in message


# --- secrets ---------------------------------------------------------------------------------


def test_no_secret_and_no_master_key_is_refused():
    with pytest.raises(ConfigError, match="LLMGW_SECRET_KEY"):
        server_secret({}, None)
    assert server_secret({"LLMGW_SECRET_KEY": "s" * 16}, None) == b"s" * 16
    assert server_secret({}, Secret("sk-master")) != server_secret({}, Secret("sk-other"))


def test_the_fingerprint_names_a_secret_without_showing_it():
    secret = b"a-secret-of-the-gateway-0123"
    print_ = secret_fingerprint(secret)
    assert print_ == secret_fingerprint(secret) != secret_fingerprint(b"another-secret-0123456")
    assert re.fullmatch(r"[0-9a-f]{64}", print_) and print_ != KeyHasher(secret).token("llmgw-secret-fingerprint")


# --- the state directory ---------------------------------------------------------------------


def test_one_up_per_state_directory(tmp_path: Path):
    first = StateDir(tmp_path / "state").lock()
    try:
        with pytest.raises(
            AlreadyRunningError, match=re.escape(f"llmgw is already running in {tmp_path / 'state'} (pid {os.getpid()})")
        ):
            StateDir(tmp_path / "state").lock()
    finally:
        first.release()
    StateDir(tmp_path / "state").lock().release()  # free again


def test_the_secret_is_generated_once_owner_only(tmp_path: Path):
    state = StateDir(tmp_path / "state")
    state.lock().release()
    secret = state.secret()
    assert secret and len(secret) >= 32
    assert stat.S_IMODE(state.secret_path.stat().st_mode) == 0o600
    assert StateDir(tmp_path / "state").secret() == secret


def test_a_state_made_before_kept_secrets_keeps_the_master_key_one(tmp_path: Path):
    state = StateDir(tmp_path / "state")
    state.nats_dir.mkdir(parents=True)  # keys exist already, hashed under the master key's secret
    assert state.secret() is None and not state.secret_path.exists()


# --- heartbeats ------------------------------------------------------------------------------


def test_a_heartbeat_is_fresh_then_stale(tmp_path: Path):
    path = heartbeat_path("worker", {"LLMGW_HEARTBEAT_FILE": str(tmp_path / "w.heartbeat")})
    assert heartbeat_age(path) is None
    touch(path)
    assert heartbeat_age(path) < 5
    old = time.time() - 120
    os.utime(path, (old, old))
    assert heartbeat_age(path) >= 119
    assert heartbeat_path("metering", {}).name == "llmgw-metering.heartbeat"


# --- the command line ------------------------------------------------------------------------


def _command(*path: str):
    parser = build_parser()
    for name in path:
        parser = next(a for a in parser._actions if hasattr(a, "choices") and isinstance(a.choices, dict)).choices[name]
    return parser


def _flags(*path: str) -> set[str]:
    return {opt for action in _command(*path)._actions for opt in action.option_strings}


def test_each_command_takes_only_its_own_flags():
    assert {"--models", "--duration", "--alias", "--max-budget", "--json", "--data"} <= _flags("keys", "create")
    assert _flags("keys", "info") == {"-h", "--help", "--url", "--master-key", "--json"}
    assert "--models" not in _flags("keys", "revoke") and "--member" not in _flags("keys", "update")
    assert {"--member", "--role"} <= _flags("teams", "add-member") and "--duration" not in _flags("teams", "create")
    assert "--email" in _flags("users", "create") and "--email" not in _flags("keys", "create")
    for path in (("keys", "list"), ("keys", "info"), ("users", "list"), ("users", "info"), ("teams", "info"), ("sql",)):
        assert "--json" in _flags(*path), path
    with pytest.raises(SystemExit):
        build_parser().parse_args(["keys", "list", "--max-budget", "3"])


def test_every_command_and_flag_has_help():
    def walk(parser, where):
        for action in parser._actions:
            if hasattr(action, "choices") and isinstance(action.choices, dict):
                for name, sub in action.choices.items():
                    assert sub.description or any(c.dest == name and c.help for c in action._choices_actions), (where, name)
                    walk(sub, (*where, name))
            elif action.dest != "help":
                assert action.help, (where, action.option_strings or action.dest)

    walk(build_parser(), ())


# --- the embedded NATS port ------------------------------------------------------------------


def test_the_default_nats_port_taken_moves_and_says_so_an_explicit_one_refuses(monkeypatch, tmp_path: Path):
    import socket

    from llmgw_cli import preflight

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        monkeypatch.setattr(preflight, "DEFAULT_NATS_PORT", port)
        chosen, note = preflight._nats(preflight.UpSettings(state_dir=tmp_path, config=None))
        assert chosen != port and note == f"port {port} was taken, so it runs on {chosen} (--nats-port to choose)"
        with pytest.raises(preflight.UpError, match=f"the NATS port {port} \\(--nats-port\\) is in use"):
            preflight._nats(preflight.UpSettings(state_dir=tmp_path, config=None, nats_port=port))
