"""The serving runtime: load an exported bundle and score texts without torch.

This package is copied into the serverless zip with only numpy, onnxruntime and tokenizers
beside it. It imports the standard library, those three packages and ``slimbert.errors``;
nothing else from slimbert, so a test keeps torch and transformers out of ``sys.modules``.
"""

from slimbert.runtime.bundle import Bundle, BundleError, load_bundle
from slimbert.runtime.session import available_cpus, session_options

__all__ = ["Bundle", "BundleError", "available_cpus", "load_bundle", "session_options"]
