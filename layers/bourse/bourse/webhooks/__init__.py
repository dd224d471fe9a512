"""Push without a socket (docs/webhooks.md): an account's user-data events delivered to its
webhooks (HTTPS, signed per webhook, retried with backoff, dead letters) and to its own SQS
queue. Pure: which events, what a delivery carries, how it is signed, which URLs and AWS
principals are accepted, how long a retry waits. The I/O is in ``bourse.adapters.webhooks``,
``bourse.adapters.webhook_queues`` and ``bourse.adapters.webhook_http``; the Lambdas' logic in
``bourse.consumers.webhook_dispatcher`` and ``bourse.consumers.webhook_sender``.
"""
