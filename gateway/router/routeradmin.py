"""Admin API of the router: chaos rules at run time, breaker and shedding state.

    GET    /admin/chaos     the chaos settings in force
    PUT    /admin/chaos     replace them (body: ``router.chaos`` settings; ``{"enabled": false}`` turns it off)
    DELETE /admin/chaos     turn chaos off and drop the rules
    GET    /admin/router    breaker states, in-flight counts, budget-exhausted providers

Each method is a terminal handler of the route table (gateway/routes.py), behind the admin-key stage; errors are
raised, and rendered by the request-id stage like any other.
"""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import ValidationError

from gateway.call import Call, Reply
from gateway.errors import InvalidRequest
from gateway.observability.logs import EventLog
from gateway.router.orchestrator import Router
from gateway.settings.router import ChaosSettings


def json_reply(obj: Any, status: int = 200) -> Reply:
    return Reply(status=status, body=orjson.dumps(obj))


class RouterAdmin:
    def __init__(self, router: Router, log: EventLog) -> None:
        self._router = router
        self._log = log

    async def get_chaos(self, call: Call) -> Reply:
        return json_reply(self._router.chaos.settings.model_dump())

    async def put_chaos(self, call: Call) -> Reply:
        try:
            new = ChaosSettings.model_validate(orjson.loads(await call.receive_body()))
        except (orjson.JSONDecodeError, ValidationError) as exc:
            raise InvalidRequest(f"Invalid chaos settings: {str(exc).splitlines()[0]}") from None
        self._router.chaos.update(new)
        self._log.event("chaos_changed", level="warning", enabled=new.enabled, rules=len(new.rules))
        return json_reply(new.model_dump())

    async def delete_chaos(self, call: Call) -> Reply:
        self._router.chaos.update(ChaosSettings())
        return json_reply(ChaosSettings().model_dump())

    async def state(self, call: Call) -> Reply:
        router = self._router
        return json_reply(
            {
                "breakers": router.breakers.states(),
                "providers": router.provider_states(),
                "in_flight": router.shedder.in_flight,
                "quota_exhausted": sorted(router.exhausted_providers()),
            }
        )
