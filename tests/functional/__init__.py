"""Functional tests: real camelidd processes driven over JSON-RPC (framework.py), plus an in-process harness."""
