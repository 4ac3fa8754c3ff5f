"""blursynth: physically faithful motion-deblurring datasets from high-fps video.

Public reading API (imported on first use, so ``import blursynth`` stays light):
``blursynth.read_shard(path)`` and ``blursynth.ShardDataset`` (a torch Dataset, ``blursynth.data``).
"""

__version__ = "0.1.0"

__all__ = ["ShardDataset", "__version__", "read_shard"]


def __getattr__(name: str):
    if name == "read_shard":
        from blursynth.shards.reader import read_shard

        return read_shard
    if name == "ShardDataset":
        from blursynth.data import ShardDataset

        return ShardDataset
    raise AttributeError(f"module 'blursynth' has no attribute {name!r}")
