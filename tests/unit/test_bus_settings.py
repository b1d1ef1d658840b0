"""The bus settings every process reads: one NATS URL or a cluster's, and the replica count."""

from __future__ import annotations

import pytest

from llmgw.config import ConfigError
from llmgw.settings import bus_settings_from_env


def test_one_url_and_one_replica_by_default():
    settings = bus_settings_from_env({})
    assert settings.servers == ["nats://127.0.0.1:4222"]
    assert settings.replicas == 1


def test_a_cluster_is_given_as_comma_separated_urls():
    settings = bus_settings_from_env(
        {"LLMGW_NATS_URL": "nats://a:4222, nats://b:4222,,nats://c:4222 ", "LLMGW_NATS_REPLICAS": "3"}
    )
    assert settings.servers == ["nats://a:4222", "nats://b:4222", "nats://c:4222"]
    assert settings.replicas == 3


@pytest.mark.parametrize("raw", ["0", "6", "-1", "three"])
def test_a_replica_count_jetstream_cannot_have_is_refused(raw):
    with pytest.raises(ConfigError, match="LLMGW_NATS_REPLICAS"):
        bus_settings_from_env({"LLMGW_NATS_REPLICAS": raw})


def test_a_url_list_without_urls_is_refused():
    with pytest.raises(ConfigError, match="LLMGW_NATS_URL"):
        bus_settings_from_env({"LLMGW_NATS_URL": " , "})
