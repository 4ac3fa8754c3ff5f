"""Recipes turn sources into :class:`blursynth.sample.Sample` objects."""
