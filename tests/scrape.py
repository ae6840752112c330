"""Reading a server's ``/metrics`` the way Prometheus does (its text format, parsed by
prometheus-client's own parser), so tests assert on what a scrape really returns."""

from __future__ import annotations

from dataclasses import dataclass, field

import aiohttp
from prometheus_client.parser import text_string_to_metric_families


@dataclass
class Scrape:
    text: str
    # family name → its type; sample name → [(labels, value)]
    families: dict[str, str] = field(default_factory=dict)
    samples: dict[str, list[tuple[dict[str, str], float]]] = field(default_factory=dict)

    def series(self, name: str, **labels: str) -> list[tuple[dict[str, str], float]]:
        return [(lbls, value) for lbls, value in self.samples.get(name, [])
                if all(lbls.get(k) == v for k, v in labels.items())]

    def value(self, name: str, **labels: str) -> float | None:
        """The one sample of ``name`` whose labels include ``labels``; None if absent."""
        found = self.series(name, **labels)
        assert len(found) <= 1, f"{name}{labels} matches {len(found)} series: {found}"
        return found[0][1] if found else None

    def names(self) -> set[str]:
        """Every series name the server can export: sample names seen, plus the names
        each declared family would use (a labelled counter not yet incremented has no
        sample, but its family is declared)."""
        suffixes = {"counter": ("_total", "_created"), "gauge": ("",),
                    "histogram": ("_bucket", "_sum", "_count", "_created")}
        out = set(self.samples)
        for name, kind in self.families.items():
            out.update(name + s for s in suffixes.get(kind, ("",)))
        return out


def parse(text: str) -> Scrape:
    scrape = Scrape(text)
    for family in text_string_to_metric_families(text):
        scrape.families[family.name] = family.type
        for sample in family.samples:
            scrape.samples.setdefault(sample.name, []).append((dict(sample.labels),
                                                               sample.value))
    return scrape


async def scrape(base_url: str, headers: dict[str, str]) -> Scrape:
    """``GET /metrics`` with ``headers`` (an operator's bearer token, as Prometheus sends)."""
    async with aiohttp.ClientSession(headers=headers) as session, \
            session.get(base_url + "/metrics") as resp:
        assert resp.status == 200, await resp.text()
        assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return parse(await resp.text())
