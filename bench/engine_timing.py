"""Counting and timing for the benchmarks: steps, seconds, latency percentiles, peak RSS."""

from __future__ import annotations

import resource
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass
class Timing:
    """``done`` steps in ``seconds``, with each step's own latency."""

    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)

    @property
    def done(self) -> int:
        return len(self.latencies)

    @property
    def rate(self) -> float:
        return self.done / self.seconds if self.seconds else 0.0

    def note(self, latency: float) -> None:
        self.latencies.append(latency)

    def percentile(self, q: float) -> float:
        return percentile(self.latencies, q)

    def line(self, label: str, *, width: int = 22) -> str:
        return (
            f"{label:<{width}} {self.done:>7} steps in {self.seconds:7.2f} s = {self.rate:7.0f}/s"
            f"   step p50 {self.percentile(0.5) * 1000:6.2f} ms"
            f"  p99 {self.percentile(0.99) * 1000:6.2f} ms"
        )


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile of ``values`` (nearest rank); 0 when there are none."""
    ordered = sorted(values)
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def peak_rss_mib() -> float:
    """This process's peak resident set size (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
