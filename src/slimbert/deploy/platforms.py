"""What AWS Lambda and Cloud Run functions are, as far as a slimbert package is concerned.

The facts every other deploy module (and the Lambda benchmarks in ``slimbert.lab``) reads
rather than repeats: the entry points a package declares, the Python it runs on, where Lambda
unpacks it, the CPU a memory size buys, and the size and setting limits a build is checked
against, and where the templates for them are kept. Importing this module does nothing.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

# -- entry points ------------------------------------------------------------------------------

# What the SAM template names as Handler and the Lambda emulator starts awslambdaric with.
LAMBDA_HANDLER = "slimbert.runtime.handler.lambda_handler"
# The function main.py of a gcp-function folder defines (`gcloud functions deploy
# --entry-point`, functions-framework --target).
GCP_ENTRY_POINT = "predict"
# The file every Lambda zip slimbert writes holds: what marks a zip as slimbert's.
HANDLER_MEMBER = "slimbert/runtime/handler.py"

# -- the Python they run ---------------------------------------------------------------------

SUPPORTED_PYTHONS = ("3.12",)
# Where Lambda unpacks the zip: the file names recorded in the bytecode (Python fixes them at
# import).
TASK_ROOT = "/var/task"
# Each Lambda architecture as Linux (uname -m, manylinux wheel tags, qemu-user) names it.
LINUX_MACHINE = {"x86_64": "x86_64", "arm64": "aarch64"}
# The manylinux tags a runtime wheel may carry (pip is given each as a --platform).
MANYLINUX_TAGS = ("manylinux_2_28", "manylinux_2_17", "manylinux2014")

# -- CPU per memory size -----------------------------------------------------------------------

# AWS Lambda allots CPU in proportion to memory: one vCPU per 1769 MB, at most six.
AWS_MB_PER_VCPU = 1769
AWS_MAX_VCPUS = 6.0


def lambda_threads(memory_mb: int) -> int:
    """onnxruntime threads for a Lambda size: it gets one vCPU per 1769 MB, at most six."""
    return max(1, min(int(AWS_MAX_VCPUS), memory_mb // AWS_MB_PER_VCPU))


# -- limits ------------------------------------------------------------------------------------

# A zip uploaded directly (not through S3), and the unzipped function with its layers, in MiB.
LAMBDA_ZIP_LIMIT_MIB = 50
LAMBDA_UNZIPPED_LIMIT_MIB = 250
LAMBDA_MEMORY_MB = (128, 10240)  # the smallest and largest memory size
LAMBDA_TIMEOUT_S = (1, 900)  # the shortest and longest timeout


def templates_dir() -> Path:
    """``slimbert/templates``: the SAM template and the lock files a build fills in or reads."""
    return Path(str(importlib.resources.files("slimbert") / "templates"))


__all__ = [
    "AWS_MAX_VCPUS",
    "AWS_MB_PER_VCPU",
    "GCP_ENTRY_POINT",
    "HANDLER_MEMBER",
    "LAMBDA_HANDLER",
    "LAMBDA_MEMORY_MB",
    "LAMBDA_TIMEOUT_S",
    "LAMBDA_UNZIPPED_LIMIT_MIB",
    "LAMBDA_ZIP_LIMIT_MIB",
    "LINUX_MACHINE",
    "MANYLINUX_TAGS",
    "SUPPORTED_PYTHONS",
    "TASK_ROOT",
    "lambda_threads",
    "templates_dir",
]
