"""Dataset statistics: blurred-area-ratio curves (``blursynth stats``) and reports (``blursynth inspect``)."""
