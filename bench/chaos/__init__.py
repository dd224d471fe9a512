"""`make chaos`: fault drills on a private exchange (docs/benchmarks.md, "Fault drills").

A seeded stream of orders and cancels from many clients (REST and the WebSocket API) while,
in turn, the backing services and the exchange's processes are killed (SIGKILL) or frozen
(SIGSTOP) and brought back; then every client answer is checked against the record.
"""
