"""The query service's client moved to `llmgw.metering_query` (the edge and the command line use it
without importing metering); kept here for the callers that still import it from metering."""

from llmgw.metering_query import query_metering

__all__ = ["query_metering"]
