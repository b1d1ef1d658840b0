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


def test_an_unknown_provider_prefix_is_an_error_naming_the_closest_one(tmp_path):
    text = "model_list:\n  - model_name: claude\n    params:\n      model: antropic/claude-3-5-sonnet\n"
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, text), env={})
    message = str(err.value)
    assert "model_list[0].params.model" in message and "'antropic'" in message
    assert "did you mean 'anthropic'?" in message and "known providers: " in message
    assert all(p in message for p in ("openai", "anthropic", "gemini", "bedrock"))


def test_bare_names_and_openai_wildcards_stay_openai(tmp_path):
    text = (
        "model_list:\n"
        "  - model_name: gpt-4\n    params: {model: gpt-4o}\n"
        '  - model_name: "llm/*"\n    params: {model: "openai/*", api_base: "http://llm.internal/{model}/v1"}\n'
        '  - model_name: "*"\n    params: {model: "*"}\n'
        "  - model_name: zephyr\n    params: {model: huggingface/HuggingFaceH4/zephyr-7b-beta}\n"
    )
    cfg = load_config(write(tmp_path, text), env={"OPENAI_API_KEY": "sk-o"})
    assert [(d.provider, d.upstream_model) for d in cfg.deployments] == [
        ("openai", "gpt-4o"),
        ("openai", "*"),
        ("openai", "*"),
        ("huggingface", "HuggingFaceH4/zephyr-7b-beta"),
    ]
    wildcard = cfg.deployments[1]
    assert wildcard.upstream_model_for("llm/llama-3-8b") == "llama-3-8b"


def test_split_model_refuses_an_unknown_prefix():
    from llmgw.catalog import UnknownProviderError, split_model

    assert split_model("gpt-4o") == ("openai", "gpt-4o")
    assert split_model("groq/llama3-8b") == ("groq", "llama3-8b")
    with pytest.raises(UnknownProviderError) as err:
        split_model("gemnii/gemini-1.5-pro")
    assert err.value.closest == "gemini"
    with pytest.raises(UnknownProviderError) as err:
        split_model("meta-llama/Llama-3-8b")
    assert err.value.closest is None and "openai/meta-llama/Llama-3-8b" in str(err.value)


def test_an_unknown_section_is_an_error_and_litellm_sections_are_accepted(tmp_path):
    with pytest.raises(ConfigError, match="unknown section 'model_lsit': did you mean 'model_list'"):
        load_config(write(tmp_path, "model_lsit: []\n"), env={})
    with pytest.raises(ConfigError, match="unknown section 'banana'") as err:
        load_config(write(tmp_path, "banana: 1\nmodel_list: []\n"), env={})
    assert "did you mean" not in str(err.value) and "known sections: model_list" in str(err.value)
    cfg = load_config(write(tmp_path, "model_list: []\nenvironment_variables: {A: b}\ncallback_settings: {}\n"), env={})
    assert cfg.deployments == ()


def test_a_yaml_error_is_one_line_with_its_place(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, "model_list:\n  - model_name: a\n   params: {\n"), env={})
    assert "\n" not in str(err.value) and "(line " in str(err.value)


def test_the_example_config_loads():
    from pathlib import Path

    example = Path(__file__).resolve().parents[2] / "examples" / "config.yaml"
    cfg = load_config(example, env={"OPENAI_API_KEY": "sk-o", "LLMGW_MASTER_KEY": "sk-m"})
    assert [d.model_name for d in cfg.deployments] == ["gpt-4", "gpt-3.5-turbo"] and cfg.master_key.reveal() == "sk-m"
