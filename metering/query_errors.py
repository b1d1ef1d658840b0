"""The error a named query raises when it cannot be made (metering/named_queries.py)."""

from __future__ import annotations


class NamedQueryError(ValueError):
    """The named query does not exist, or its parameters are not what it takes."""
