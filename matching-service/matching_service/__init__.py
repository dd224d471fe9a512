"""The matching service: Kafka commands in, engine, Kafka events out exactly once (see
``service.py``), Redis live view, S3 snapshots."""
