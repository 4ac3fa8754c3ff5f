"""Why a run kept no window: which filter rejected how many, and the option that would let them through.

A run whose every candidate window fails a filter (the WILD flow filter, ``--max-step-px``, an unreliable
flow) or is dropped as static (``--drop-static``) ends with one line such as::

    all 212 windows rejected: flow_threshold 204, unreliable_flow 8; raise --flow-threshold (now 1 px)

The advice names the option of the reason that rejected the most windows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

#: Rejection reason (recipes/wild.py, ``PairJudge``) -> (option, its key in the run's config, the advice).
ADVICE: dict[str, tuple[str, str, str]] = {
    "flow_threshold": ("--flow-threshold", "flow_threshold", "raise --flow-threshold (now {} px)"),
    "unreliable_flow": ("--max-match-error", "max_match_error",
                        "raise --max-match-error (now {} gray levels) or try another --flow"),
    "max_step": ("--max-step-px", "max_step_px", "raise --max-step-px (now {} px)"),
}
#: The label of windows left out by ``--drop-static`` (blur equal to sharp: nothing moved).
STATIC = "static (blur == sharp)"
STATIC_ADVICE = "nothing moved in them: leave out --drop-static to keep them"


def rejection_message(rejections: Mapping[str, int], static_dropped: int, config: Mapping,
                      sources: Sequence[str]) -> str | None:
    """The one-line reason of a run that kept no window, or None when no window was rejected or dropped.

    Args:
        rejections: candidate windows rejected, by reason (``JobSummary.rejections``).
        static_dropped: windows dropped because blur equals sharp (``--drop-static``).
        config: the run's resolved configuration (the current value of each option is quoted).
        sources: the paths of the sources that were read (one is named in the message).
    """
    counts = {k: v for k, v in rejections.items() if v}
    if static_dropped:
        counts[STATIC] = static_dropped
    if not counts:
        return None
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    total = sum(counts.values())
    where = f"{sources[0]}: " if len(sources) == 1 else ""
    of = f" of {len(sources)} sources" if len(sources) > 1 else ""
    listed = ", ".join(f"{k} {v}" for k, v in ordered)
    verb = "dropped" if list(counts) == [STATIC] else "rejected"
    return f"{where}all {total} windows{of} {verb}: {listed}; {advice(ordered[0][0], config)}"


def advice(reason: str, config: Mapping) -> str:
    """What to change so that fewer windows are rejected for ``reason``."""
    if reason == STATIC:
        return STATIC_ADVICE
    if reason not in ADVICE:
        return f"see the {reason} rejections in the documentation of the recipe"
    _, key, text = ADVICE[reason]
    value = config.get(key)
    now = f"{value:g}" if isinstance(value, (int, float)) else str(value)
    return text.format(now) if value is not None else text.split(" (now")[0]
