"""Build-time only (needs ``onnx``): weights -> ONNX graph -> int8 model directory."""
