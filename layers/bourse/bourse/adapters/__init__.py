"""Thin adapters to the outside world: Kafka, PostgreSQL, Redis and AWS APIs."""
