"""Native passthrough for Google: usage read from the provider's own answers, and the client's
path pointed at the deployment's model (and, on Vertex AI, its project and location).

A Gemini answer carries `usageMetadata` in a whole GenerateContentResponse, in each event of an
`alt=sse` stream (the last one has the final counts), or in the elements of the JSON array that
`streamGenerateContent` returns without `alt=sse`.
"""

from __future__ import annotations

import re

import msgspec

from workers.providers.answers import NativeUsage
from workers.providers.gemini.response import gemini_usage_to_usage
from workers.providers.gemini.wire import UsageMetadata, UsageProbe, usage_probe_decoder

_MODEL_IN_PATH = re.compile(r"(/models/)([^/:?]+)")
_VERTEX_SCOPE = re.compile(r"^(/v1(?:beta1)?/projects/)[^/]+(/locations/)[^/]+(/)")


class GoogleNativeUsage(NativeUsage):
    def _take(self, meta: UsageMetadata | None) -> None:
        if meta is not None:
            self.usage = gemini_usage_to_usage(meta)

    def body(self, content: bytes) -> None:
        try:
            decoded = usage_probe_decoder.decode(content)
        except msgspec.DecodeError:
            return
        for probe in decoded if isinstance(decoded, list) else [decoded]:
            self._take(probe.usageMetadata)

    def event(self, data: bytes) -> None:
        try:
            probe = msgspec.json.decode(data, type=UsageProbe)
        except msgspec.DecodeError:
            return
        self._take(probe.usageMetadata)


def with_model(path: str, upstream_model: str) -> str:
    """`/v1beta/models/<anything>:generateContent` -> the deployment's model in its place."""
    return _MODEL_IN_PATH.sub(lambda m: m.group(1) + upstream_model, path, count=1)


def with_vertex_scope(path: str, project: str, location: str) -> str:
    """`/v1/projects/<p>/locations/<l>/...` -> the deployment's project and location (its
    credential is good for those)."""
    return _VERTEX_SCOPE.sub(lambda m: f"{m.group(1)}{project}{m.group(2)}{location}{m.group(3)}", path, count=1)
