"""The building blocks of every command's configuration: fingerprinted fields and the shared field groups.

A field that determines the bytes a command writes is declared with :func:`output_field`; the fingerprint
(what an existing output folder must match to be resumed) is read from that metadata, so a new
output-affecting field cannot silently stay out of it. Everything else (where and how fast the work runs)
is left out, and ``tests/test_config.py`` checks that by behaviour: changing any other field leaves the
output bytes unchanged.

The fingerprint also carries ``revision``: the algorithm revision of the recipe (``REVISIONS``). Bump it
when a recipe's output bytes change, so a resume refuses to mix the old and the new rules in one folder.
"""

from __future__ import annotations

import dataclasses
from dataclasses import KW_ONLY, dataclass, field

from blursynth.errors import ConfigError

#: Algorithm revision of each recipe's output; part of its fingerprint (see the module docstring). ``flow``
#: is the revision of the flow measurements any recipe may use (``--max-step-px``, ``--blur-map``, the WILD
#: filter); a config that computes flow carries it as ``flow_revision``.
#: wild 2, flow 2 (issue 16): pair statistics, match errors and blur maps use only measurable motion
#: (flow/measure.py), and DIS is re-tuned.
#: local 2 (issue 18): ``--substeps auto`` (a continuous exposure) by default, and objects keyed by their path
#: relative to the VOC/COCO root, so their split no longer depends on how ``--voc``/``--coco`` was spelled.
REVISIONS: dict[str, int] = {"gopro": 1, "lode": 1, "wild": 2, "reds": 1, "local": 2, "flow": 2}

EXECUTORS = ("local", "ray")
CRF_NAMES = ("gamma", "srgb", "linear")
LAYOUTS = ("h5", "gopro")
COMPRESSIONS = ("lzf", "gzip")
BACKENDS = ("auto", "stream", "torch")


def output_field(default=dataclasses.MISSING, *, omit_default: bool = False, **kwargs):
    """A dataclass field that determines the output bytes: it is part of the fingerprint.

    ``omit_default``: for an option added after outputs were made whose default reproduces the old
    behaviour; it is left out of the fingerprint while at its default, so those outputs still resume.
    """
    return field(default=default, metadata={"fingerprint": True, "omit_default": omit_default}, **kwargs)


def jsonable(value):
    """Tuples (nested too) as lists and dataclasses as dicts, as JSON stores them."""
    if isinstance(value, tuple):
        return [jsonable(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return value


class Fingerprinted:
    """``fingerprint()`` and ``to_dict()`` (both JSON-serialisable) for frozen dataclass configs."""

    recipe: str

    def fingerprint(self) -> dict:
        """The settings that determine the output bytes, plus the algorithm revisions they were made by."""
        values = {f.name: jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)
                  if f.metadata.get("fingerprint")
                  and not (f.metadata.get("omit_default") and getattr(self, f.name) == f.default)}
        return values | self.revisions()

    def revisions(self) -> dict[str, int]:
        """``revision``: the recipe's algorithm revision; subclasses add the revisions of optional stages."""
        return {"revision": REVISIONS[self.recipe]}

    def to_dict(self) -> dict:
        return {f.name: jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}


@dataclass(frozen=True)
class ExecutorOptions:
    """How work units are executed (none of this changes the output bytes).

    Args:
        executor: ``local`` (this machine) or ``ray``.
        workers: local worker processes; 1 runs units in the driver process itself.
        ray_address: Ray cluster to join (``auto``: the one started with ``ray start`` on this machine);
            None starts a private local Ray instance (or joins ``RAY_ADDRESS`` when set).
        retries: more attempts for a unit that raised or whose worker died.
        num_gpus: GPUs each Ray task requests (1 with ``--device cuda``).
    """

    executor: str = "local"
    workers: int = 1
    ray_address: str | None = None
    retries: int = 2
    num_gpus: float = 0.0

    def check(self) -> None:
        if self.executor not in EXECUTORS:
            raise ConfigError(f"--executor: unknown executor {self.executor!r}; choose from {', '.join(EXECUTORS)}")
        if self.workers < 1:
            raise ConfigError(f"--workers: expected a positive number, got {self.workers}")
        if self.retries < 0:
            raise ConfigError(f"--retries: expected 0 or more, got {self.retries}")
        if self.ray_address is not None and self.executor != "ray":
            raise ConfigError("--ray-address: only used with --executor ray")
        if self.executor == "ray" and self.workers != 1:
            raise ConfigError("--workers: only used with --executor local (Ray runs one task per free CPU)")


@dataclass(frozen=True)
class ExecutionFields:
    """Where the work units run (``--executor``, ``--workers``, ``--ray-address``, ``--retries``).

    Keyword-only, never in a fingerprint: they change how fast a dataset is made, never its bytes.
    """

    _: KW_ONLY
    executor: str = "local"
    workers: int = 1
    ray_address: str | None = None
    retries: int = 2

    def executor_options(self, device: str = "cpu") -> ExecutorOptions:
        """The options for :func:`blursynth.run.executors.run_units`; Ray tasks ask for a GPU on CUDA."""
        return ExecutorOptions(self.executor, self.workers, self.ray_address, self.retries,
                               num_gpus=1.0 if str(device).startswith("cuda") else 0.0)


@dataclass(frozen=True)
class OutputFields:
    """The settings every dataset-writing command shares (checked by :func:`check_output_options`).

    Keyword-only, so each command's own positional fields (inputs, OUT) come first. ``device``, ``backend``
    and ``overwrite`` are not in the fingerprint here (``average`` writes the same bytes on every backend);
    a command whose bytes depend on the backend redeclares it with :func:`output_field`.
    """

    _: KW_ONLY
    crf: str = output_field("gamma")
    gamma: float = output_field(2.2)
    seed: int = output_field(0)
    val_fraction: float = output_field(0.0)
    shard_size: int = output_field(100)
    layout: tuple[str, ...] = output_field(("h5",))
    compression: str | None = output_field(None)
    device: str = "auto"
    backend: str = "auto"
    overwrite: bool = False


def check_output_options(cfg) -> None:
    """The checks every dataset-writing command shares: CRF, splits, shards, compression, layout, backend,
    executor."""
    if cfg.crf not in CRF_NAMES:
        raise ConfigError(f"--crf: expected one of {', '.join(CRF_NAMES)}, got {cfg.crf!r}")
    if not (0.1 <= cfg.gamma <= 10.0):
        raise ConfigError(f"--gamma: expected a value in [0.1, 10], got {cfg.gamma}")
    if not (0.0 <= cfg.val_fraction < 1.0):
        raise ConfigError(f"--val-fraction: expected a value in [0, 1), got {cfg.val_fraction}")
    if cfg.shard_size < 1:
        raise ConfigError(f"--shard-size: expected a positive number of samples, got {cfg.shard_size}")
    if cfg.compression not in (None, *COMPRESSIONS):
        raise ConfigError(f"--compression: expected one of {', '.join(COMPRESSIONS)}, got {cfg.compression!r}")
    if not cfg.layout or any(p not in LAYOUTS for p in cfg.layout):
        raise ConfigError(f"--layout: expected one or more of {', '.join(LAYOUTS)}, got {','.join(cfg.layout)!r}")
    if cfg.backend not in BACKENDS:
        raise ConfigError(f"--backend: expected one of {', '.join(BACKENDS)}, got {cfg.backend!r}")
    cfg.executor_options().check()
