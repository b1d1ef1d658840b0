"""The key secret's fingerprint in the settings bucket: stored at the first start, a start under
another secret refused, accepted again once an admin removes it."""

from __future__ import annotations

import pytest

from llmgw.contracts import SECRET_FINGERPRINT_KEY, Subjects
from llmgw.kv import open_bucket
from llmgw.secret_check import SecretMismatchError, check_secret_fingerprint
from llmgw.secrets import secret_fingerprint

pytestmark = pytest.mark.integration

SECRET = b"the-first-secret-0123456789"
OTHER = b"another-secret-0123456789"


async def test_the_first_secret_is_kept_and_another_refused(nats_client, bus_prefix):
    js, subjects = nats_client.jetstream(), Subjects(bus_prefix)
    await check_secret_fingerprint(js, subjects, SECRET)
    kv = await open_bucket(js, subjects.settings_bucket)
    stored = (await kv.get(SECRET_FINGERPRINT_KEY)).value
    assert stored == secret_fingerprint(SECRET).encode() and SECRET not in stored

    await check_secret_fingerprint(js, subjects, SECRET)  # the same secret: a restart
    with pytest.raises(SecretMismatchError, match="differs from the one the stored keys were made with"):
        await check_secret_fingerprint(js, subjects, OTHER)

    await kv.delete(SECRET_FINGERPRINT_KEY)  # an admin accepts the new secret
    await check_secret_fingerprint(js, subjects, OTHER)
    assert (await kv.get(SECRET_FINGERPRINT_KEY)).value == secret_fingerprint(OTHER).encode()
