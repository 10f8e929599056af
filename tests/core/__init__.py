"""Tests of the backbone-agnostic core (fifo_core)."""
