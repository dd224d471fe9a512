"""The local stack: Kafka, PostgreSQL, Redis and moto server on 127.0.0.1, run without Docker.

``python -m devstack up | down | status | run | logs`` (see docs/local-stack.md).
"""
