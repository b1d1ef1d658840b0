"""Seed 001's curl walkthrough, run with the real `curl` exactly as written (host and port adjusted):
the master key calls a model, a virtual key limited to gpt-4 is generated, it may call gpt-4 and
not gpt-3.5-turbo, /key/info shows its models, /key/delete deletes it, and it is refused after."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from tests.e2e.stack import MASTER_KEY

pytestmark = pytest.mark.e2e

SEED_HOST = "0.0.0.0:4000"

# The commands below are copied verbatim from seed 001 (only the host is replaced when run).
MASTER_CHAT = """curl --location 'http://0.0.0.0:4000/chat/completions' \\
  --header 'Content-Type: application/json' \\
  --header "Authorization: Bearer $LITELLM_MASTER_KEY" \\
  --data '{
    "model": "gpt-3.5-turbo",
    "messages": [
      {"role": "user", "content": "Hello, how are you?"}
    ]
  }'
"""

GENERATE = """export VIRTUAL_KEY=$(curl -s 'http://0.0.0.0:4000/key/generate' \\
  --header 'Content-Type: application/json' \\
  --header "Authorization: Bearer $LITELLM_MASTER_KEY" \\
  --data-raw '{"models": ["gpt-4"], "metadata": {"user": "antoine.gerardin@gmail.com"}}' | jq -r '.key')
"""

VIRTUAL_CHAT_GPT4 = """curl --location 'http://0.0.0.0:4000/chat/completions' \\
  --header 'Content-Type: application/json' \\
  --header "Authorization: Bearer $VIRTUAL_KEY" \\
  --data '{
    "model": "gpt-4",
    "messages": [
      {"role": "user", "content": "Hello, how are you?"}
    ]
  }'
"""

VIRTUAL_CHAT_GPT35 = """curl --location 'http://0.0.0.0:4000/chat/completions' \\
  --header 'Content-Type: application/json' \\
  --header "Authorization: Bearer $VIRTUAL_KEY" \\
  --data '{
    "model": "gpt-3.5-turbo",
    "messages": [
      {"role": "user", "content": "Hello, how are you?"}
    ]
  }'
"""

KEY_INFO = """curl "http://0.0.0.0:4000/key/info?key=$VIRTUAL_KEY" \\
     -X GET \\
     -H "Authorization: Bearer $LITELLM_MASTER_KEY"
"""

KEY_DELETE = """curl 'http://0.0.0.0:4000/key/delete' \\
  --header 'Content-Type: application/json' \\
  --header "Authorization: Bearer $LITELLM_MASTER_KEY" \\
  --data-raw "{\\"keys\\": [\\"$VIRTUAL_KEY\\"]}"
"""

STATUS_MARK = "\n__HTTP_STATUS__="


class Shell:
    """Runs seed commands with bash against the stack, like a user who ran `export $(... .env)`."""

    def __init__(self, stack, tmp_path) -> None:
        self.host = f"127.0.0.1:{stack.port}"
        self.env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "LITELLM_MASTER_KEY": MASTER_KEY}
        # curl reads $CURL_HOME/.curlrc: it appends the HTTP status to the output, the commands stay as written.
        self.curl_home = tmp_path / "curlrc"
        self.curl_home.mkdir()
        (self.curl_home / ".curlrc").write_text(f'write-out = "{STATUS_MARK.encode("unicode_escape").decode()}%{{http_code}}"\n')

    def script(self, command: str) -> str:
        assert SEED_HOST in command
        script = command.replace(SEED_HOST, self.host)
        if shutil.which("jq") is None:  # the seed pipes into jq; without it, the same with Python
            script = script.replace("jq -r '.key'", "python3 -c 'import json,sys; print(json.load(sys.stdin)[\"key\"])'")
        return script

    def run(self, command: str, with_status: bool = True, after: str = "") -> str:
        env = dict(self.env, CURL_HOME=str(self.curl_home)) if with_status else self.env
        done = subprocess.run(["bash", "-c", self.script(command) + after], env=env, capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, (command, done.stdout, done.stderr)
        return done.stdout

    def call(self, command: str) -> tuple[int, dict]:
        """Run a plain curl command: (HTTP status, JSON body)."""
        out = self.run(command)
        body, _, status = out.rpartition(STATUS_MARK)
        return int(status), json.loads(body)


@pytest.fixture(scope="module")
def shell(stack, tmp_path_factory):
    assert shutil.which("curl"), "seed 001 needs curl"
    return Shell(stack, tmp_path_factory.mktemp("seed001"))


def test_seed_001_walkthrough(stack, shell):
    # The master key calls the proxy.
    status, body = shell.call(MASTER_CHAT)
    assert status == 200, body
    assert body["object"] == "chat.completion" and body["choices"][0]["message"]["content"]

    # `export VIRTUAL_KEY=$(curl ... | jq -r '.key')` (run without the status suffix: its output goes to jq).
    virtual_key = shell.run(GENERATE, with_status=False, after='\nprintf "%s" "$VIRTUAL_KEY"')
    assert virtual_key.startswith("sk-") and virtual_key != MASTER_KEY and virtual_key != "null"
    shell.env["VIRTUAL_KEY"] = virtual_key

    # The virtual key may call gpt-4 ...
    status, body = shell.call(VIRTUAL_CHAT_GPT4)
    assert status == 200, body
    assert body["object"] == "chat.completion" and body["choices"][0]["message"]["content"]

    # ... and not gpt-3.5-turbo ("Cannot run unallowed endpoint"): 403, naming the models it may use.
    status, body = shell.call(VIRTUAL_CHAT_GPT35)
    assert status == 403, body
    assert body["error"]["code"] == "permission_denied"
    assert "gpt-3.5-turbo" in body["error"]["message"] and "gpt-4" in body["error"]["message"]
    assert virtual_key not in json.dumps(body)

    # "Check spending for this key".
    status, body = shell.call(KEY_INFO)
    assert status == 200, body
    assert body["key"] == virtual_key
    info = body["info"]
    assert info["models"] == ["gpt-4"]
    assert info["metadata"] == {"user": "antoine.gerardin@gmail.com"}
    assert isinstance(info["spend"], (int, float))
    assert info["expires"] is None
    assert info["token"] and virtual_key not in json.dumps(info)

    # Delete the virtual key.
    status, body = shell.call(KEY_DELETE)
    assert status == 200, body
    assert body == {"deleted_keys": [virtual_key]}

    # The deleted key is refused, saying why, without echoing the key.
    status, body = shell.call(VIRTUAL_CHAT_GPT4)
    assert status == 401, body
    assert body["error"]["code"] == "invalid_api_key"
    assert "deleted" in body["error"]["message"]
    assert virtual_key not in json.dumps(body)

    status, body = shell.call(KEY_INFO)
    assert status == 404, body
