"""The full stack from ``tests/e2e`` (real HTTP endpoint, fake Slack, Graph emulator), plus a
scrape of ``GET /metrics`` parsed the way Prometheus would."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import Stack, make_stack, stack

__all__ = ["make_stack", "scrape", "stack"]


class Scrape:
    """One scrape, by sample name and labels."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.samples = [
            sample for family in text_string_to_metric_families(text) for sample in family.samples
        ]

    def value(self, name: str, **labels: str) -> float | None:
        """The sample ``name`` whose labels include ``labels``; None when absent."""
        for sample in self.samples:
            if sample.name == name and labels.items() <= sample.labels.items():
                return float(sample.value)
        return None

    def total(self, name: str, **labels: str) -> float:
        """Sum over every sample ``name`` whose labels include ``labels``."""
        return sum(
            float(s.value)
            for s in self.samples
            if s.name == name and labels.items() <= s.labels.items()
        )


def scrape(stack: Stack) -> Scrape:
    url = stack.events_url.removesuffix("/slack/events") + "/metrics"
    response = httpx.get(url, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return Scrape(response.text)
