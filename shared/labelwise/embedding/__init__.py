"""Text (and later image) embedding: the port, model manifests and the ONNX adapter."""
