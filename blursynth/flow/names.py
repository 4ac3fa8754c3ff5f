"""The names the flow layer answers to (``--flow``, ``--flow-stat``, ``--raft-model``).

Kept free of imports so that the config layer can validate options without loading any backend.
"""

FLOW_NAMES = ("dis", "deepflow", "farneback", "raft")
FLOW_STAT_NAMES = ("p99", "max", "mean")
RAFT_MODELS = ("small", "large")
