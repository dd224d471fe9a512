"""The one HTTP call of push without a socket: POST a delivery to a webhook's URL.

No redirects are followed (a 3xx is a failed attempt): the URL was checked when it was
registered (bourse.webhooks.rules), and a redirect would lead the exchange elsewhere.
"""

from __future__ import annotations

import threading

import requests


class DeliveryFailed(Exception):
    """The receiver did not take the delivery: a status other than 2xx, a timeout, a refused
    or broken connection."""


_local = threading.local()


def _session() -> requests.Session:
    session: requests.Session | None = getattr(_local, "session", None)
    if session is None:
        session = _local.session = requests.Session()
        session.trust_env = False  # no proxy from the environment between us and the receiver
    return session


def post(url: str, body: bytes, headers: dict[str, str], timeout_s: float) -> int:
    """The receiver's status, when it is 2xx; otherwise DeliveryFailed."""
    try:
        answer = _session().post(
            url, data=body, headers=headers, timeout=(min(timeout_s, 5.0), timeout_s),
            allow_redirects=False,
        )  # fmt: skip
    except requests.RequestException as exc:
        raise DeliveryFailed(f"{type(exc).__name__}: {exc}") from exc
    answer.close()
    if not 200 <= answer.status_code < 300:
        raise DeliveryFailed(f"HTTP {answer.status_code}")
    return answer.status_code
