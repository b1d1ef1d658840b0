"""The reconciler's settings: off by default, each provider's reports named by the environment,
its admin key never in a repr, bad values refused with the setting's name."""

from __future__ import annotations

import pytest

from llmgw.config import ConfigError
from metering.settings import metering_settings_from_env

pytestmark = pytest.mark.unit

BASE = {"LLMGW_CLICKHOUSE_URL": "chdb://memory", "LLMGW_SECRET_KEY": "s" * 32}


def test_off_unless_providers_are_named() -> None:
    assert metering_settings_from_env(BASE).reconcile is None
    assert metering_settings_from_env({**BASE, "LLMGW_RECONCILE_PROVIDERS": " "}).reconcile is None


def test_providers_and_their_reports() -> None:
    env = {
        **BASE,
        "LLMGW_RECONCILE_PROVIDERS": "openai, Anthropic",
        "LLMGW_RECONCILE_OPENAI_ADMIN_KEY": "sk-admin-secret-value-1234",
        "LLMGW_RECONCILE_OPENAI_KEY_IDS": "key_a, proj_b",
        "LLMGW_RECONCILE_ANTHROPIC_API_BASE": "http://127.0.0.1:9/",
        "LLMGW_RECONCILE_INTERVAL": "600",
        "LLMGW_RECONCILE_DRIFT_THRESHOLD": "0.05",
    }
    settings = metering_settings_from_env(env).reconcile
    assert settings is not None
    openai, anthropic = settings.providers
    assert (openai.provider, openai.api_base, openai.key_ids) == ("openai", "https://api.openai.com", ("key_a", "proj_b"))
    assert openai.admin_key is not None and openai.admin_key.reveal() == "sk-admin-secret-value-1234"
    assert (anthropic.provider, anthropic.api_base, anthropic.admin_key) == ("anthropic", "http://127.0.0.1:9", None)
    assert (settings.interval, settings.threshold, settings.lookback_hours) == (600.0, 0.05, 48)
    assert "sk-admin-secret" not in repr(settings) and "sssss" not in repr(settings)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("LLMGW_RECONCILE_PROVIDERS", "openai,gemini"),
        ("LLMGW_RECONCILE_INTERVAL", "0"),
        ("LLMGW_RECONCILE_LOOKBACK_HOURS", "0"),
        ("LLMGW_RECONCILE_DRIFT_THRESHOLD", "-0.1"),
        ("LLMGW_RECONCILE_DRIFT_THRESHOLD", "lots"),
    ],
)
def test_a_bad_setting_is_named(name: str, value: str) -> None:
    env = {**BASE, "LLMGW_RECONCILE_PROVIDERS": "openai", name: value}
    with pytest.raises(ConfigError, match=name):
        metering_settings_from_env(env)
