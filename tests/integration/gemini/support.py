"""What the Gemini and Vertex AI adapter modules share besides their fixtures (conftest.py): the
fake's key, service accounts, deployments, requests and reading what an adapter answers."""

from __future__ import annotations

import json

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bench.fake_gemini import FakeServerHandle
from llmgw.config import Deployment, Secret
from llmgw.contracts import NativeCall, Operation, UpstreamRequest
from tests.integration.adapter_support import collect as collect_stream
from tests.integration.adapter_support import upstream_request as shared_request
from workers.providers.base import NativeHead
from workers.usage import Usage

KEY = "AIzaSy-fake-gemini-key-0042"
HELLO = [{"role": "user", "content": "Hello there friend"}]  # 3 words + 1 content = 4 prompt tokens
WEATHER_TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather",
            "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]},
        },
    }
]


def private_pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()


def public_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def service_account(key: rsa.RSAPrivateKey, token_uri: str, project: str = "sa-project") -> str:
    return json.dumps(
        {
            "type": "service_account",
            "project_id": project,
            "private_key_id": "k1",
            "private_key": private_pem(key),
            "client_email": f"llmgw@{project}.iam.gserviceaccount.com",
            "client_id": "1",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": token_uri,
        }
    )


def gemini_deployment(fake: FakeServerHandle, model: str = "gemini-1.5-flash", key: str = KEY) -> Deployment:
    return Deployment(
        id="gem/0", model_name="gem", provider="gemini", upstream_model=model, api_base=fake.root_url, api_key=Secret(key)
    )


def vertex_deployment(fake: FakeServerHandle, credentials: str, model: str = "gemini-1.5-pro", **params) -> Deployment:
    extra = {"vertex_project": "my-project", "vertex_location": "europe-west4", **params}
    extra = {k: v for k, v in extra.items() if v is not None}
    extra["vertex_credentials"] = Secret(credentials)
    return Deployment(
        id="vx/0",
        model_name="vx",
        provider="vertex_ai",
        upstream_model=model,
        api_base=fake.root_url,
        extra=tuple(sorted(extra.items())),
    )


def upstream_request(body: dict | bytes, **kwargs) -> UpstreamRequest:
    return shared_request(body, "gem", "gem/0", **kwargs)


async def collect(stream) -> tuple[list[dict], list[Usage]]:
    return await collect_stream(stream)


def text_of(chunks: list[dict]) -> str:
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])


async def native_items(
    provider,
    deployment,
    path: str,
    body: dict,
    *,
    stream: bool = False,
    query: str = "",
    upstream_model: str = "gemini-1.5-flash",
):
    call = NativeCall(method="POST", path=path, query=query, headers=[("content-type", "application/json")])
    request = upstream_request(body, stream=stream, operation=Operation.NATIVE, native=call)
    head, data, usages = None, b"", []
    async for item in provider.native(deployment, request, upstream_model):
        if isinstance(item, NativeHead):
            head = item
        elif isinstance(item, Usage):
            usages.append(item)
        else:
            data += item
    return head, data, usages
