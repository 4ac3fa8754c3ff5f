"""Output: atomic HDF5 shards, their ``_stats.json`` markers, the manifest and the GOPRO tree layout."""
