"""Which models a caller may use: aliases first (the key's, then its team's `model_aliases`), then the key's, the user's, the team's and its organization's model lists
(model names, access groups from `model_info.access_groups`, or `*` patterns)."""

from __future__ import annotations

import fnmatch

from gateway.auth import Principal
from gateway.errors import GatewayError
from llmgw.config import Deployment
from llmgw.contracts import ErrorCode, ErrorType


class ModelAccess:
    def __init__(self, deployments: tuple[Deployment, ...]) -> None:
        self.access_groups: dict[str, set[str]] = {}
        for d in deployments:
            for group in d.access_groups:
                self.access_groups.setdefault(group, set()).add(d.model_name)

    def expand(self, models: list[str]) -> list[str]:
        """Model names and patterns a list allows, with access groups replaced by their members."""
        out: list[str] = []
        for m in models:
            out.extend(sorted(self.access_groups[m]) if m in self.access_groups else [m])
        return out

    def _allows(self, models: list[str], name: str) -> bool:
        return not models or any(m == name or ("*" in m and fnmatch.fnmatchcase(name, m)) for m in self.expand(models))

    def permits(self, models: list[str], name: str) -> bool:
        """Whether a model list (empty: every model) allows a model, access group or pattern `name`."""
        return name in models or all(self._allows(models, n) for n in self.expand([name]))

    def resolve(self, principal: Principal, requested: str) -> str:
        """The model group to route to; 403 naming the allowed models when it is not allowed."""
        key = principal.key
        if key is None:
            return requested
        team = principal.team
        name = key.aliases.get(requested) or (team.model_aliases.get(requested) if team is not None else None) or requested
        if not self._allows(key.models, name):
            raise self._denied(f"This API key may not use model `{requested}`.", key.models)
        user = principal.user
        if user is not None and not self._allows(user.models, name):
            raise self._denied(f"User {user.user_id} may not use model `{requested}`.", user.models)
        if team is not None and not self._allows(team.models, name):
            raise self._denied(f"Team {team.team_id} may not use model `{requested}`.", team.models)
        org = principal.organization
        if org is not None and not self._allows(org.models, name):
            raise self._denied(f"Organization {org.organization_id} may not use model `{requested}`.", org.models)
        return name

    def allows(self, principal: Principal, name: str) -> bool:
        return all(
            holder is None or self._allows(holder.models, name)
            for holder in (principal.key, principal.user, principal.team, principal.organization)
        )

    def _denied(self, message: str, models: list[str]) -> GatewayError:
        allowed = ", ".join(self.expand(models))
        return GatewayError(
            403, f"{message} Allowed models: [{allowed}]", ErrorType.PERMISSION, ErrorCode.PERMISSION_DENIED, "model"
        )

    @staticmethod
    def system_prompts(principal: Principal, global_prompt: str | None) -> list[str]:
        """Policy prompts in order: gateway-wide, the team's, the key's."""
        prompts = [global_prompt]
        if principal.team is not None:
            prompts.append(principal.team.system_prompt)
        if principal.key is not None:
            prompts.append(principal.key.system_prompt)
        return [p for p in prompts if p]
