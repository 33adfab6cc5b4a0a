"""blastscope.inference: model bundles, ONNX export and the one Predictor used by the CLI and the service.

Submodules are imported on demand (``from blastscope.inference.predictor import Predictor``) so that
verifying a bundle or summarising subjects does not load torch.
"""
