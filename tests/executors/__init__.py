"""Tests of the executors against real Docker, Caddy and git."""
