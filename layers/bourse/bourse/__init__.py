"""Bourse: a spot crypto exchange. The shared package every Lambda and the matching service use.

Layers, arrows pointing inward: ``domain`` (pure data and rules) <- ``engine`` (pure matching)
<- ``adapters`` (Kafka, PostgreSQL, Redis, AWS) and ``api`` (Binance request/response shapes).
"""
