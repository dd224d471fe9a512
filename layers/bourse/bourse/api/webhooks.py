"""Bourse-specific endpoints (SIGNED, USER_DATA) for push without a socket (docs/webhooks.md):

- ``POST /api/v3/bourse/webhooks`` ``url``: a new webhook and its secret (shown once);
- ``GET /api/v3/bourse/webhooks``: the account's webhooks and its queue;
- ``DELETE /api/v3/bourse/webhooks`` ``webhookId``: removes one;
- ``POST /api/v3/bourse/queue`` ``principal``: the account's own SQS FIFO queue, readable by
  that AWS principal (created unless it exists; a second call changes the principal);
- ``DELETE /api/v3/bourse/queue``: removes the queue and its registration.

The registrations are bourse.webhooks.registry's; ``registry`` below is where they come from
(tests put a fake there).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bourse.api.handlers import SIGNED_COMMON, USER_DATA, Deps, Request
from bourse.api.orders import check_known
from bourse.webhooks.registry import Registry


def _live_registry() -> Registry:
    from bourse.adapters.webhooks import registry as live

    return live()


registry: Callable[[], Registry] = _live_registry

ADD_PARAMS = SIGNED_COMMON | {"url"}
REMOVE_PARAMS = SIGNED_COMMON | {"webhookId"}
QUEUE_PARAMS = SIGNED_COMMON | {"principal"}


def add_webhook(req: Request, deps: Deps) -> dict[str, Any]:
    caller, params = req.signed(deps, USER_DATA)
    check_known(params, ADD_PARAMS)
    return registry().add_webhook(caller.account_id, params.required_str("url"))


def list_webhooks(req: Request, deps: Deps) -> dict[str, Any]:
    caller, params = req.signed(deps, USER_DATA)
    check_known(params, SIGNED_COMMON)
    return registry().listing(caller.account_id)


def remove_webhook(req: Request, deps: Deps) -> dict[str, Any]:
    caller, params = req.signed(deps, USER_DATA)
    check_known(params, REMOVE_PARAMS)
    return registry().remove_webhook(caller.account_id, params.required_str("webhookId"))


def open_queue(req: Request, deps: Deps) -> dict[str, Any]:
    caller, params = req.signed(deps, USER_DATA)
    check_known(params, QUEUE_PARAMS)
    return registry().open_queue(caller.account_id, params.required_str("principal"))


def close_queue(req: Request, deps: Deps) -> dict[str, Any]:
    caller, params = req.signed(deps, USER_DATA)
    check_known(params, SIGNED_COMMON)
    return registry().close_queue(caller.account_id)
