"""Medians over rounds, ratios wharf / docker-registry, targets, and the markdown report."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from bench.registries import REFERENCE, WHARF

__all__ = [
    "Metric",
    "Results",
    "Target",
    "noise_warning",
    "render_noise",
    "render_rounds",
    "render_table",
]


@dataclass(frozen=True)
class Target:
    """``ratio_min``/``ratio_max`` bound wharf / docker-registry; ``wharf_max`` and
    ``wharf_min`` bound wharf's own figure."""

    ratio_min: float | None = None
    ratio_max: float | None = None
    wharf_max: float | None = None
    wharf_min: float | None = None

    def describe(self, unit: str) -> str:
        if self.ratio_min is not None:
            return f">= {self.ratio_min:g}x"
        if self.ratio_max is not None:
            return f"<= {self.ratio_max:g}x"
        if self.wharf_max is not None:
            return f"< {self.wharf_max:g} {unit}"
        if self.wharf_min is not None:
            return f">= {self.wharf_min:g} {unit}"
        return ""

    def holds(self, wharf: float, ratio: float | None) -> bool:
        if self.wharf_max is not None:
            return wharf < self.wharf_max
        if self.wharf_min is not None:
            return wharf >= self.wharf_min
        if ratio is None:
            return False
        if self.ratio_min is not None:
            return ratio >= self.ratio_min
        if self.ratio_max is not None:
            return ratio <= self.ratio_max
        return True


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    unit: str
    target: Target | None = None
    #: Decimal places in the table.
    digits: int = 0
    #: "main" for the results table, "cpu" for the table of server CPU per unit of work.
    group: str = "main"


@dataclass
class Results:
    """Every sample, by metric key and registry name, in round order."""

    samples: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    #: CPU cores other processes took during each sample, by item and registry.
    noise: dict[str, dict[str, list[float]]] = field(default_factory=dict)

    def add(self, key: str, registry: str, value: float) -> None:
        self.samples.setdefault(key, {}).setdefault(registry, []).append(value)

    def add_noise(self, item: str, registry: str, cores: float) -> None:
        self.noise.setdefault(item, {}).setdefault(registry, []).append(cores)

    def median(self, key: str, registry: str) -> float | None:
        values = self.samples.get(key, {}).get(registry)
        return statistics.median(values) if values else None


def _number(value: float | None, digits: int) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def _ratio(wharf: float | None, reference: float | None) -> float | None:
    if wharf is None or reference is None or reference == 0:
        return None
    return wharf / reference


def render_table(metrics: list[Metric], results: Results) -> tuple[str, list[str]]:
    """The markdown table of medians, and the labels of the metrics whose target is missed."""
    lines = [
        f"| Measurement | {WHARF} | {REFERENCE} | {WHARF} / {REFERENCE} | Target | |",
        "|---|---:|---:|---:|---|---|",
    ]
    missed = []
    for metric in metrics:
        if metric.key in results.skipped:
            reason = results.skipped[metric.key]
            lines.append(
                f"| {metric.label} ({metric.unit}) | - | - | - | "
                f"{metric.target.describe(metric.unit) if metric.target else ''} | "
                f"skipped: {reason} |"
            )
            continue
        wharf = results.median(metric.key, WHARF)
        reference = results.median(metric.key, REFERENCE)
        ratio = _ratio(wharf, reference)
        verdict = ""
        target = ""
        if metric.target is not None:
            target = metric.target.describe(metric.unit)
            if wharf is not None:
                ok = metric.target.holds(wharf, ratio)
                verdict = "holds" if ok else "**misses**"
                if not ok:
                    missed.append(metric.label)
        lines.append(
            f"| {metric.label} ({metric.unit}) | {_number(wharf, metric.digits)} | "
            f"{_number(reference, metric.digits)} | "
            f"{'-' if ratio is None else f'{ratio:.2f}x'} | {target} | {verdict} |"
        )
    return "\n".join(lines), missed


def render_rounds(metrics: list[Metric], results: Results) -> str:
    """Every sample of every round, to judge the spread behind the medians."""
    lines = [
        f"| Measurement | {WHARF}, per round | {REFERENCE}, per round |",
        "|---|---|---|",
    ]
    for metric in metrics:
        if metric.key in results.skipped or metric.key not in results.samples:
            continue
        cells = []
        for registry in (WHARF, REFERENCE):
            values = results.samples[metric.key].get(registry, [])
            cells.append(", ".join(_number(value, metric.digits) for value in values) or "-")
        lines.append(f"| {metric.label} ({metric.unit}) | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)


def noise_warning(results: Results, cores: int) -> str | None:
    """A warning when other processes took a noticeable share of the machine."""
    samples = [value for by in results.noise.values() for values in by.values() for value in values]
    if not samples:
        return None
    mean = sum(samples) / len(samples)
    if mean < 0.2:
        return None
    busy = sum(value >= 0.2 for value in samples)
    return (
        f"**Shared machine:** other processes took {mean:.2f} of the {cores} cores on average "
        f"during the samples ({busy} of {len(samples)} samples above 0.2, at most "
        f"{max(samples):.2f}; last table). Rates are lower and ratios noisier than on an idle "
        "machine; the CPU-per-work table is less affected."
    )


def render_noise(results: Results) -> str:
    lines = [
        f"| Item | {WHARF} samples | {REFERENCE} samples |",
        "|---|---|---|",
    ]
    for item, by_registry in results.noise.items():
        cells = [
            ", ".join(f"{value:.2f}" for value in by_registry.get(registry, [])) or "-"
            for registry in (WHARF, REFERENCE)
        ]
        lines.append(f"| {item} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)
