"""The bundled minimal trainer of ``blursynth train-check`` (model, metrics, loop, check)."""
