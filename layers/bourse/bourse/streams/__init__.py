"""Binance WebSocket stream payloads from the engine's events (pure: no I/O).

``payloads`` shapes one message, ``market`` keeps the per-symbol state the aggregated streams
need and turns a batch of events into messages, ``frames`` keeps every message under API
Gateway's size limit. See docs/streams.md.
"""
