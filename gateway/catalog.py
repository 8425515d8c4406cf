"""The models clients can ask for: group names and their aliases, resolved to a model group.

A consumer with a model allowlist (``models:`` on the consumer or its tier) may use only the groups its list
names (naming an alias allows the whole group); any other known model is a 403 ``model_not_allowed``, and
``/v1/models`` lists only the groups it may use. A model that exists for nobody stays a 404. The lists of the
configured consumers are computed once; a virtual key's (gateway/keys/) from its own list or its tier's.
"""

from __future__ import annotations

from typing import Any

from gateway.config import Consumer, ModelGroup, Settings
from gateway.errors import ModelNotAllowed, ModelNotFound


class ModelCatalog:
    def __init__(self, settings: Settings, created: int = 1_767_225_600) -> None:
        self._by_name: dict[str, ModelGroup] = {}
        for group in settings.models:
            for name in (group.name, *group.aliases):
                self._by_name[name] = group
        self._cards = [
            ({"id": name, "object": "model", "created": created, "owned_by": group.owned_by}, group.name)
            for group in settings.models
            for name in (group.name, *group.aliases)
        ]
        self._settings = settings
        self._allowed: dict[str, frozenset[str] | None] = {}
        for c in settings.consumers:
            self._allowed[c.name] = self._groups(settings.models_for(c))

    def _groups(self, names: tuple[str, ...] | None) -> frozenset[str] | None:
        return None if names is None else frozenset(self._by_name[n].name for n in names if n in self._by_name)

    def _allowed_for(self, consumer: Consumer | None) -> frozenset[str] | None:
        if consumer is None:
            return None
        if consumer.name in self._allowed:
            return self._allowed[consumer.name]
        tier = self._settings.tiers.get(consumer.tier)
        return self._groups(consumer.models if consumer.models is not None else tier.models if tier else None)

    def resolve(self, name: str) -> ModelGroup:
        group = self._by_name.get(name)
        if group is None:
            raise ModelNotFound(f"The model '{name}' does not exist or you do not have access to it.", param="model")
        return group

    def resolve_for(self, name: str, consumer: Consumer | None) -> ModelGroup:
        """The group ``name`` resolves to, if ``consumer`` may use it."""
        group = self.resolve(name)
        allowed = self._allowed_for(consumer)
        if allowed is not None and group.name not in allowed:
            raise ModelNotAllowed(f"This API key may not use the model '{name}'.", param="model")
        return group

    def listing(self, consumer: Consumer | None = None) -> dict[str, Any]:
        allowed = self._allowed_for(consumer)
        return {"object": "list", "data": [card for card, g in self._cards if allowed is None or g in allowed]}
