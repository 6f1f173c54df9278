"""Build-time only: the bundled image model (EfficientNet-Lite0) and its sample photos."""
