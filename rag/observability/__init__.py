"""Metrics, traces and logs of the service (see the README's Observability section)."""
