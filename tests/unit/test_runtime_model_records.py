"""Records of models added at run time: secrets sealed, the rest kept; a record opened into the
same Deployment a `model_list` entry makes; problems named in the API's terms."""

from __future__ import annotations

import pytest

from llmgw.config import ConfigError, Secret
from llmgw.contracts import ModelRecord
from llmgw.runtime_models import config_problem, open_record, seal_params, shown_params
from llmgw.secrets import CredentialCipher

CIPHER = CredentialCipher(b"a-test-secret-of-enough-length")
KEY = "sk-live-provider-credential-1234"


def record(params: dict) -> ModelRecord:
    plain, sealed, masked = seal_params(params, CIPHER)
    return ModelRecord(model_id="m-1", model_name="eu", litellm_params=plain, sealed=sealed, masked=masked)


def test_secrets_are_sealed_and_masked_and_the_rest_kept() -> None:
    rec = record(
        {"model": "bedrock/anthropic.claude", "aws_secret_access_key": "AWSSECRET1234567", "aws_region_name": "eu-west-1"}
    )
    assert rec.litellm_params == {"model": "bedrock/anthropic.claude", "aws_region_name": "eu-west-1"}
    assert set(rec.sealed) == {"aws_secret_access_key"} and "AWSSECRET" not in rec.sealed["aws_secret_access_key"]
    assert shown_params(rec)["aws_secret_access_key"] == "AWS...4567"
    reference = record({"model": "openai/gpt-4o", "api_key": "os.environ/SOME_KEY"})
    assert reference.masked == {"api_key": "os.environ/SOME_KEY"}  # a reference, not a secret


def test_a_record_opens_into_its_deployment() -> None:
    rec = record({"model": "openai/gpt-4o", "api_key": KEY, "api_base": "http://up/v1", "input_cost_per_token": 1e-06})
    d = open_record(rec, CIPHER, env={})
    assert (d.id, d.model_name, d.provider, d.upstream_model) == ("m-1", "eu", "openai", "gpt-4o")
    assert d.api_key == Secret(KEY) and d.api_base == "http://up/v1" and d.input_cost_per_token == 1e-06
    with pytest.raises(ConfigError, match="another LLMGW_SECRET_KEY"):
        open_record(rec, CredentialCipher(b"another-secret-of-enough-length"), env={})


def test_problems_are_named_as_the_api_names_them() -> None:
    with pytest.raises(ConfigError) as exc:
        open_record(record({"model": "antropic/claude-3"}), CIPHER, env={})
    assert config_problem(exc.value).startswith("litellm_params.model:")
    with pytest.raises(ConfigError) as exc:
        open_record(record({"model": "openai/gpt-4o", "api_key": "os.environ/NOT_SET_HERE"}), CIPHER, env={})
    assert "NOT_SET_HERE" in config_problem(exc.value) and "model_list" not in config_problem(exc.value)
