"""Scenarios, the oracle's scorer, and ``sonic-fsm bench``."""
