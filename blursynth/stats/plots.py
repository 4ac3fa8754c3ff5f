"""Matplotlib figures of ``stats`` and ``inspect`` (Agg backend: no display needed)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from blursynth.stats.flow_ratio import span_text


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def curve_label(curve) -> str:
    """A dataset's legend entry: its label, pairs and the time span its pairs were measured over."""
    span = span_text(curve.spans_ms)
    return f"{curve.label} ({curve.pairs} pairs{', ' + span if span else ''})"


def plot_ratio_curves(curves, thresholds, path: str | Path, *, log_y: bool = False,
                      title: str | None = None) -> list[str]:
    """One curve per dataset with a +-std band: blurred-area ratio vs flow threshold (LODE Fig. 3).

    Returns:
        The legend entries drawn (:func:`curve_label`; datasets without pairs are not drawn).
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    x = np.asarray(thresholds, dtype=float)
    labels = []
    for c in curves:
        if not c.pairs:
            continue
        labels.append(curve_label(c))
        (line,) = ax.plot(x, c.mean, marker="o" if len(x) <= 12 else None, ms=3, label=labels[-1])
        lo = np.clip(c.mean - c.std, 1e-4 if log_y else 0.0, 1.0)
        ax.fill_between(x, lo, np.clip(c.mean + c.std, 0.0, 1.0), color=line.get_color(), alpha=0.2, lw=0)
    ax.set_xlabel("optical-flow threshold (pixels)")
    ax.set_ylabel("blurred area ratio")
    if log_y:
        ax.set_yscale("log")
        ax.set_ylim(1e-4, 1.05)
    else:
        ax.set_ylim(0.0, 1.02)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper right", fontsize=8)
    ax.set_title(title or "Blurred area ratio vs flow threshold")
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)
    return labels


@dataclass(frozen=True)
class HistogramPanel:
    """One bar chart of ``inspect``'s histograms.png.

    Attributes:
        title, xlabel, ylabel: what the panel, its x axis and its bar heights show.
        edges: bin edges (``len(heights) + 1``), in x-axis units.
        heights: one bar per bin (counts, or fractions that sum to 1).
        edge_labels: tick labels of the edges, for bins drawn with equal widths whatever their range.
    """

    title: str
    edges: Sequence[float]
    heights: Sequence[float]
    xlabel: str
    ylabel: str = "samples"
    edge_labels: Sequence[str] | None = None


def plot_histograms(panels: list[HistogramPanel], path: str | Path) -> None:
    """Bar charts side by side, one per panel."""
    plt = _pyplot()
    n = max(1, len(panels))
    fig, axes = plt.subplots(1, n, figsize=(4 * n, 3.2), dpi=110, squeeze=False)
    for ax, panel in zip(axes[0], panels, strict=False):
        edges = np.asarray(panel.edges, dtype=float)
        ax.bar(edges[:-1], panel.heights, width=np.diff(edges), align="edge", edgecolor="black", lw=0.3)
        if panel.edge_labels is not None:
            ax.set_xticks(edges, list(panel.edge_labels), fontsize=7)
        ax.set_title(panel.title, fontsize=10)
        ax.set_xlabel(panel.xlabel, fontsize=9)
        ax.set_ylabel(panel.ylabel, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)
