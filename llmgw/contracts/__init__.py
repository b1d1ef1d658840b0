"""The one contract between the edge, the workers and metering.

Every NATS subject, stream, consumer and KV bucket name, every message that travels on the bus,
every record kept in KV and every error code lives in this package; no other module spells a
subject or a wire shape. `messages` holds the bus messages and names, `records` the KV records.
"""

from llmgw.contracts.messages import *  # noqa: F403
from llmgw.contracts.messages import __all__ as _messages_all
from llmgw.contracts.records import *  # noqa: F403
from llmgw.contracts.records import __all__ as _records_all

__all__ = [*_messages_all, *_records_all]
