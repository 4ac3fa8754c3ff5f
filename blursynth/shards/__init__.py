"""Outputs and the one way to read them: atomic HDF5 shards, their ``_stats.json`` markers, the manifest, the
GOPRO tree (writer.py, markers.py, manifest.py, gopro.py, export.py) and the read path (listing.py, reader.py)."""
