"""The models clients can ask for: group names and their aliases, resolved to a model group."""

from __future__ import annotations

from typing import Any

from gateway.config import ModelGroup, Settings
from gateway.errors import ModelNotFound


class ModelCatalog:
    def __init__(self, settings: Settings, created: int = 1_767_225_600) -> None:
        self._by_name: dict[str, ModelGroup] = {}
        for group in settings.models:
            for name in (group.name, *group.aliases):
                self._by_name[name] = group
        self._cards = [
            {"id": name, "object": "model", "created": created, "owned_by": group.owned_by}
            for group in settings.models
            for name in (group.name, *group.aliases)
        ]

    def resolve(self, name: str) -> ModelGroup:
        group = self._by_name.get(name)
        if group is None:
            raise ModelNotFound(f"The model '{name}' does not exist or you do not have access to it.", param="model")
        return group

    def listing(self) -> dict[str, Any]:
        return {"object": "list", "data": self._cards}
