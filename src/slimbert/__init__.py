"""slimbert: from labelled data to a tiny, fast, cheap serverless BERT function.

Importing the package is cheap: nothing here pulls in torch, transformers or onnxruntime,
so the serving runtime (``slimbert.runtime``) stays torch-free.
"""

from slimbert.errors import SlimbertError

__version__ = "0.1.0"
__all__ = ["SlimbertError", "__version__"]
