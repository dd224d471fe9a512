"""The local MSK/SQS event sources build the events Lambda sends (no broker needed)."""

from __future__ import annotations

import base64
from types import SimpleNamespace

import pytest
from kafka import TopicPartition

from bourse.settings import get_settings
from devstack.event_sources import function_spec, msk_event, sqs_record

pytestmark = pytest.mark.unit


def test_msk_event_shape() -> None:
    record = SimpleNamespace(
        topic="bourse.events", partition=0, offset=41, timestamp=1_700_000_000_000,
        timestamp_type=0, key=b"bourse", value=b"[]", headers=[("h", b"\x01\x02")],
    )  # fmt: skip
    event = msk_event({TopicPartition("bourse.events", 0): [record]}, get_settings(), "arn:x")
    assert event["eventSource"] == "aws:kafka"
    (got,) = event["records"]["bourse.events-0"]
    assert got["offset"] == 41 and got["timestampType"] == "CREATE_TIME"
    assert base64.b64decode(got["key"]) == b"bourse"
    assert base64.b64decode(got["value"]) == b"[]"
    assert got["headers"] == [{"h": [1, 2]}]


def test_sqs_record_shape() -> None:
    message = {
        "MessageId": "m1", "ReceiptHandle": "r1", "Body": "{}", "MD5OfBody": "x",
        "Attributes": {"ApproximateReceiveCount": "2"},
        "MessageAttributes": {"side": {"DataType": "String", "StringValue": "BUY"}},
    }  # fmt: skip
    got = sqs_record(message, "arn:q", "us-east-1")
    assert got["messageId"] == "m1" and got["eventSourceARN"] == "arn:q"
    assert got["messageAttributes"]["side"]["stringValue"] == "BUY"
    assert got["messageAttributes"]["side"]["dataType"] == "String"


def test_specs_come_from_the_template() -> None:
    recorder = function_spec("RecorderFunction", get_settings())
    assert recorder.event_type == "MSK"
    assert recorder.event["Topics"] == ["bourse.events"]
    # On-demand poller mode: no partial batch response, no retry limit (both need provisioned
    # mode); a failed batch is delivered again until it succeeds.
    assert "FunctionResponseTypes" not in recorder.event
    assert "MaximumRetryAttempts" not in recorder.event
    assert recorder.event["ConsumerGroupId"] == "bourse-local-recorder"
    settlement = function_spec("SettlementFunction", get_settings())
    assert settlement.event_type == "SQS" and settlement.handler == "app.lambda_handler"
