"""Readers: discover sources, decode videos (PyAV) and frame folders into uint8/uint16 RGB frames."""
