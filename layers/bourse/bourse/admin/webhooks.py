"""The admin plane's routes for push without a socket (docs/admin-api.md, docs/webhooks.md):
an operator registers, lists and removes an account's webhooks and its queue, as the account
itself can through the API (bourse.api.webhooks). These change no balance and send no command:
they are registrations in the webhooks table, logged with the operator's principal.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bourse.admin import parsing as p
from bourse.admin.ports import AdminDeps
from bourse.domain import errors
from bourse.domain.errors import BinanceError
from bourse.webhooks.registry import Registry

if TYPE_CHECKING:
    from bourse.admin.handlers import AdminRequest

log = logging.getLogger("bourse.admin")
NO_PRINCIPAL = BinanceError(errors.UNAUTHORIZED, errors.MSG_UNAUTHORIZED, 403)


def _live_registry() -> Registry:
    from bourse.adapters.webhooks import registry as live

    return live()


registry: Callable[[], Registry] = _live_registry


def _account(req: AdminRequest, deps: AdminDeps) -> int:
    if not req.principal:
        raise NO_PRINCIPAL
    account = p.account_id(req.path.get("accountId", ""))
    if deps.view.account_status(account) is None:
        raise p.UNKNOWN_ACCOUNT
    return account


def add_webhook(req: AdminRequest, deps: AdminDeps) -> dict[str, Any]:
    account = _account(req, deps)
    body = p.Body(req.body)
    url = body.string("url")
    body.done()
    created = registry().add_webhook(account, url)
    log.info("webhook added", extra={"accountId": account, "webhookId": created["webhookId"],
                                     "principal": req.principal})  # fmt: skip
    return created


def list_webhooks(req: AdminRequest, deps: AdminDeps) -> dict[str, Any]:
    account = _account(req, deps)
    p.Body(req.body).done()
    return registry().listing(account)


def remove_webhook(req: AdminRequest, deps: AdminDeps) -> dict[str, Any]:
    account = _account(req, deps)
    p.Body(req.body).done()
    return registry().remove_webhook(account, req.path.get("webhookId", ""))


def open_queue(req: AdminRequest, deps: AdminDeps) -> dict[str, Any]:
    account = _account(req, deps)
    body = p.Body(req.body)
    principal = body.string("principal")
    body.done()
    return registry().open_queue(account, principal)


def close_queue(req: AdminRequest, deps: AdminDeps) -> dict[str, Any]:
    account = _account(req, deps)
    p.Body(req.body).done()
    return registry().close_queue(account)
