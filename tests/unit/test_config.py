from __future__ import annotations

import pytest

from llmgw.config import ConfigError, Secret, load_config

pytestmark = pytest.mark.unit


def write(tmp_path, text: str):
    p = tmp_path / "config.yaml"
    p.write_text(text)
    return p


def test_litellm_config_loads_unchanged(tmp_path):
    cfg = load_config(
        write(
            tmp_path,
            """
model_list:
  - model_name: gpt-4
    litellm_params:
      model: ollama/llama2
      api_key: os.environ/MY_KEY
    model_info:
      access_groups: ["beta-models"]
  - model_name: my-free-tier
    params:
      model: huggingface/HuggingFaceH4/zephyr-7b-beta
      api_base: http://0.0.0.0:8001
general_settings:
  master_key: sk-1234
""",
        ),
        env={"MY_KEY": "sk-secret"},
    )
    first, second = cfg.deployments
    assert (first.provider, first.upstream_model, first.api_base) == ("ollama", "llama2", "http://127.0.0.1:11434/v1")
    assert first.api_key == Secret("sk-secret") and first.access_groups == ("beta-models",)
    assert (second.provider, second.upstream_model) == ("huggingface", "HuggingFaceH4/zephyr-7b-beta")
    assert cfg.master_key.reveal() == "sk-1234"
    assert cfg.providers == ("huggingface", "ollama")


def test_master_key_from_environment_wins(tmp_path):
    cfg = load_config(
        write(tmp_path, "general_settings:\n  master_key: sk-file\nmodel_list: []\n"), env={"LLMGW_MASTER_KEY": "sk-env"}
    )
    assert cfg.master_key.reveal() == "sk-env"


def test_missing_environment_variable_is_named(tmp_path):
    with pytest.raises(ConfigError, match="NOPE is not set"):
        load_config(
            write(tmp_path, "model_list:\n  - model_name: a\n    params:\n      model: gpt-4\n      api_key: os.environ/NOPE\n"),
            env={},
        )


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("model_list: 3\n", "model_list"),
        ("model_list:\n  - params: {model: gpt-4}\n", "model_name"),
        ("model_list:\n  - model_name: a\n", "params"),
        ("model_list:\n  - model_name: a\n    params: {model: vllm/x}\n", "api_base"),
        ("model_list: [\n", "not valid YAML"),
    ],
)
def test_bad_config_says_where(tmp_path, text, where):
    with pytest.raises(ConfigError, match=where):
        load_config(write(tmp_path, text), env={})


def test_environment_keys_enable_providers_as_in_seed_000():
    cfg = load_config(None, env={"OPENAI_API_KEY": "sk-o", "GROQ_API_KEY": "gsk-g"})
    names = {d.model_name for d in cfg.deployments}
    assert names == {"openai/*", "*", "groq/*"}
    catch_all = next(d for d in cfg.deployments if d.model_name == "*")
    assert catch_all.upstream_model_for("gpt-3.5-turbo") == "gpt-3.5-turbo"
    groq = next(d for d in cfg.deployments if d.model_name == "groq/*")
    assert groq.matches("groq/llama3-8b") == "llama3-8b" and groq.upstream_model_for("groq/llama3-8b") == "llama3-8b"
    assert groq.matches("groq/") is None and groq.matches("openai/x") is None


def test_secret_never_prints():
    s = Secret("sk-very-secret-value")
    assert "very" not in repr(s) and "very" not in str(s) and "very" not in f"{s}"
    assert s.masked() == "sk-...alue"
