"""What the fake OpenAI upstream counts (GET /_fake/stats; see fake_openai.py), also kept by the
other fakes that answer in OpenAI's shapes (fake_cohere.py, fake_huggingface.py, fake_tei.py,
fake_vectara.py)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class FakeStats:
    """The fake's counters, as GET /_fake/stats reports them (POST /_fake/reset starts them over)."""

    requests: int = 0
    by_model: dict[str, int] = field(default_factory=dict)
    auth_failures: int = 0
    by_path: dict[str, int] = field(default_factory=dict)  # /<model-id>/v1/... calls by model id
    last_responses: dict | None = None  # the body of the last Responses API call
    responses_usage: dict[str, int] = field(default_factory=dict)  # Responses API usage reported, summed
    agent: dict[str, list] = field(default_factory=lambda: {"calls": [], "outputs": [], "usage": []})  # chat fake-agent
    in_flight: dict[str, int] = field(default_factory=dict)  # calls being answered now, by model
    most_in_flight: dict[str, int] = field(default_factory=dict)  # the most at once since the reset, by model

    def as_dict(self) -> dict:
        return {
            "requests": self.requests,
            "by_model": dict(self.by_model),
            "auth_failures": self.auth_failures,
            "by_path": dict(self.by_path),
            "last_responses": self.last_responses,
            "responses_usage": dict(self.responses_usage),
            "agent": {k: list(v) for k, v in self.agent.items()},
            "most_in_flight": dict(self.most_in_flight),
        }

    def reset(self) -> None:
        self.requests = 0
        self.by_model.clear()
        self.auth_failures = 0
        self.by_path.clear()
        self.last_responses = None
        self.responses_usage.clear()
        self.agent = {"calls": [], "outputs": [], "usage": []}
        self.most_in_flight = dict(self.in_flight)  # (those being answered still count)
