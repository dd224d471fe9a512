"""The CloudFormation custom-resource protocol: run an action, PUT the outcome to ResponseURL.

Hand-written because it is one HTTP PUT (the cfn-response module exists only for inline
ZipFile code, and crhelper would add a dependency to every function for it). Create and Update
run the action; Delete does nothing, because nothing Bourse creates at deploy (the commands
journal, the record's schema) may be destroyed with a stack update.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any

Action = Callable[[Mapping[str, Any]], dict[str, str]]


def _put(url: str, body: dict[str, Any]) -> None:
    data = json.dumps(body).encode()
    # The pre-signed S3 URL is signed for an empty content type.
    request = urllib.request.Request(
        url, data=data, method="PUT", headers={"Content-Type": "", "Content-Length": str(len(data))}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()


def run(
    event: Mapping[str, Any], log_stream: str, physical_id: str, action: Action
) -> dict[str, Any]:
    """Answer CloudFormation (and return the answer): SUCCESS with the action's data, or
    FAILED with the error as the reason, so a failed deploy says why instead of timing out."""
    status, reason, data = "SUCCESS", "", {}
    try:
        if event["RequestType"] in ("Create", "Update"):
            data = action(event.get("ResourceProperties", {}))
    except Exception as exc:  # any failure must reach CloudFormation, or it waits an hour
        status, reason = "FAILED", f"{type(exc).__name__}: {exc}"[:1000]
    body = {
        "Status": status,
        "Reason": reason or f"see CloudWatch log stream {log_stream}",
        "PhysicalResourceId": physical_id,
        "StackId": event["StackId"],
        "RequestId": event["RequestId"],
        "LogicalResourceId": event["LogicalResourceId"],
        "Data": data,
    }
    _put(str(event["ResponseURL"]), body)
    return body
