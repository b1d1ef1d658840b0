"""The one contract between the edge, the workers and metering.

Every NATS subject, stream, consumer and KV bucket name, every message that travels on the bus,
every record kept in KV (`console`: the admin console's sessions) and every error code lives in this package; no other module spells a
subject or a wire shape. `names` holds the names on the bus and the error codes, `messages` the bus
messages, `usage` the usage events, `records` the KV records, `stored` the records kept for clients
(stored responses and chat completions), `audio` the uploads of the audio routes, `batches` the Files
and Batch APIs' records, `provider_batches` the hand-off of a batch to a provider's own batch API.
"""

from llmgw.contracts.audio import *  # noqa: F403
from llmgw.contracts.audio import __all__ as _audio_all
from llmgw.contracts.batches import *  # noqa: F403
from llmgw.contracts.batches import __all__ as _batches_all
from llmgw.contracts.console import *  # noqa: F403
from llmgw.contracts.console import __all__ as _console_all
from llmgw.contracts.messages import *  # noqa: F403
from llmgw.contracts.messages import __all__ as _messages_all
from llmgw.contracts.names import *  # noqa: F403
from llmgw.contracts.names import __all__ as _names_all
from llmgw.contracts.provider_batches import *  # noqa: F403
from llmgw.contracts.provider_batches import __all__ as _provider_batches_all
from llmgw.contracts.records import *  # noqa: F403
from llmgw.contracts.records import __all__ as _records_all
from llmgw.contracts.stored import *  # noqa: F403
from llmgw.contracts.stored import __all__ as _stored_all
from llmgw.contracts.usage import *  # noqa: F403
from llmgw.contracts.usage import __all__ as _usage_all

__all__ = [  # noqa: PLE0604 - the modules' own lists of names
    *_names_all,
    *_messages_all,
    *_console_all,
    *_usage_all,
    *_records_all,
    *_stored_all,
    *_audio_all,
    *_batches_all,
    *_provider_batches_all,
]
