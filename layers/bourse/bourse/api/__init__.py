"""Binance Spot API v3 at the edge: request parameters, signatures, response shapes. Pure."""
