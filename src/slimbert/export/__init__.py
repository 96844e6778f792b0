"""Export: torch to ONNX, optimised and int8 behind the quality gate; the bundle stage."""
