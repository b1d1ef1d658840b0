"""How a member is named on the team and organization member routes: by `user_id`, or by
`user_email` (the user with that address, else a new user whose id is the address)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from gateway.admin.params import bad_param
from gateway.identity import IdentityView


class _Member(Protocol):
    @property
    def user_id(self) -> str | None: ...
    @property
    def user_email(self) -> str | None: ...


def member_id(identity: IdentityView, user_id: str | None, user_email: str | None) -> str:
    """The user a new member names: its `user_id`, else the user with that e-mail address, else a
    new user whose id is the address (so concurrent calls naming one new address make one user)."""
    if user_id:
        return user_id
    if not user_email:
        raise bad_param("member", "each member needs a `user_id` or a `user_email`")
    existing = identity.user_by_email(user_email)
    return existing.user_id if existing is not None else user_email.strip()


def listed_member_id(
    identity: IdentityView, members: Iterable[_Member], user_id: str | None, user_email: str | None
) -> str | None:
    """The user id of an existing member named by id or e-mail address (None: named by neither
    known address); the caller checks that it is a member."""
    if user_id:
        return user_id
    if not user_email:
        raise bad_param("user_id", "give the member's `user_id` or `user_email`")
    wanted = user_email.strip().lower()
    listed = next((m for m in members if (m.user_email or "").strip().lower() == wanted), None)
    if listed is not None:
        return listed.user_id
    user = identity.user_by_email(user_email)
    return user.user_id if user is not None else None
