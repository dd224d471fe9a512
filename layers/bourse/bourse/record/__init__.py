"""The durable record: pure mapping from engine events to the rows of the record's tables.

Nothing here does I/O; ``bourse.adapters.record_store`` writes what ``rows.map_events`` builds.
"""
