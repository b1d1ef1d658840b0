"""llmgw: an LLM gateway. Shared pieces: the bus contract, configuration, logging, the CLI."""

__version__ = "0.1.0"
