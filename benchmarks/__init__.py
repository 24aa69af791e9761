"""Benchmarks for durable, side by side with DBOS Transact (see docs/benchmarks.md)."""
