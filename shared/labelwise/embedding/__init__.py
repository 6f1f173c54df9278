"""Embedding: the ports (``port.py``), model manifests, the model registry, and the adapters that
run models on onnxruntime: text (``onnx_embedder.py``), the bundled image model
(``efficientnet.py``), CLIP (``clip/``), with shared image preprocessing in ``pixels.py``."""
