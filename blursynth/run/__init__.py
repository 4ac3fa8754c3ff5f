"""Running work units: executors and progress reporting."""
