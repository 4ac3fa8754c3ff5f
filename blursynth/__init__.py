"""blursynth: physically faithful motion-deblurring datasets from high-fps video."""

__version__ = "0.1.0"

__all__ = ["__version__"]
