"""The options of ``slimbert bench lambda`` and its smoke profile (``--quick``).

The defaults are the protocol of Benešová et al.: 5,000 requests after 100 warm-up requests
and 10 cold starts, at the memory sizes Lambda users pick most (512 MB to 3,008 MB).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import ClassVar, Literal

from slimbert.config import Options, check

PAPER_REQUESTS = 5000
PAPER_WARMUP = 100
PAPER_COLD_STARTS = 10
MAX_INSTANCES = 16  # K emulators at once: a bound on what one machine is asked to host
# The packaged function's own limit (SLIMBERT_MAX_TEXTS, runtime/request.py): a larger batch
# would be answered 400, which measures nothing.
MAX_TEXTS_PER_REQUEST = 64
BATCH_SIZES = (1, 8, 32, 64)
BATCH_REQUESTS = 200


@dataclasses.dataclass(frozen=True)
class BenchLambdaOptions(Options):
    stage: ClassVar[str] = "bench-lambda"

    package: Path | None = Path("runs/package/slimbert-aws-lambda-x86_64.zip")
    gcp: Path | None = None  # a gcp-function folder from `slimbert package --target gcp-function`
    teacher: Path | None = None  # a torch classifier folder: the baseline
    data: str = "tweets3:test"
    text_column: str = "text"
    memory_mb: tuple[int, ...] = (512, 1024, 1769, 3008)
    requests: int = PAPER_REQUESTS
    warmup: int = PAPER_WARMUP
    cold_starts: int = PAPER_COLD_STARTS
    # Beside each fresh start of a Lambda zip, one of its stack floor (slimbert.lab.coldfloor):
    # the same zip with a handler that only imports the serving stack.
    floor: bool = True
    concurrency: tuple[int, ...] = (1, 2, 4)
    concurrency_requests: int = 500
    concurrency_memory_mb: int | None = None  # None: 1769 when measured, else the largest size
    platform: Literal["aws", "gcp-gen1", "gcp-gen2"] = "aws"
    gcp_cpu: float | None = None  # gen2's --cpu; None: Google's default for the memory size
    time_limit_s: float = 900.0  # per function and memory size (and per concurrency level)
    # The window in which the CPU share is enforced (cpu.cfs_period_us; the quota keeps the
    # share). 10 ms, not the kernel's 100 ms: see docs/design.md, "CPU share and CFS period".
    cfs_period_ms: float = 10.0
    # Requests of k texts each, measured per memory size in the warm instance after the
    # single-text requests (students only: the teacher is the cold-start and latency baseline).
    batch_sizes: tuple[int, ...] = BATCH_SIZES
    batch_requests: int = BATCH_REQUESTS  # per batch size and memory size
    results: Path = Path("bench/results")
    # smoke profile: 1 size, 50 requests, 2 cold starts, K=1,2 x 40, 10 requests per batch size
    quick: bool = False

    def validate(self) -> None:
        check(
            self.package is not None or self.gcp is not None,
            "nothing to measure",
            hint="pass --package <lambda zip> and/or --gcp <gcp-function folder>",
        )
        check(len(self.memory_mb) > 0, "memory_mb needs at least one size")
        for mb in (*self.memory_mb, self.concurrency_memory_mb or 1024):
            check(128 <= mb <= 10240, f"memory size {mb} MB is outside 128..10240")
        check(self.requests >= 10, "requests must be at least 10")
        check(
            self.quick or self.warmup >= PAPER_WARMUP,
            f"warmup must be at least {PAPER_WARMUP} requests",
            hint="use --quick for a smoke run",
        )
        check(self.cold_starts >= 1, "cold_starts must be at least 1")
        for k in self.concurrency:
            check(1 <= k <= MAX_INSTANCES, f"concurrency {k} is outside 1..{MAX_INSTANCES}")
        check(self.concurrency_requests >= 1, "concurrency_requests must be at least 1")
        for k in self.batch_sizes:
            check(
                1 <= k <= MAX_TEXTS_PER_REQUEST,
                f"batch size {k} is outside 1..{MAX_TEXTS_PER_REQUEST}",
                hint=f"the packaged function accepts at most {MAX_TEXTS_PER_REQUEST} texts",
            )
        check(len(set(self.batch_sizes)) == len(self.batch_sizes), "batch sizes repeat")
        check(self.batch_requests >= 1, "batch_requests must be at least 1")
        check(self.gcp_cpu is None or self.gcp_cpu > 0, "gcp_cpu must be positive")
        check(self.time_limit_s > 0, "time_limit_s must be positive")
        check(1.0 <= self.cfs_period_ms <= 1000.0, "cfs_period_ms must be 1..1000 ms")

    def profile(self) -> BenchLambdaOptions:
        """The settings actually run: these options, or the smoke profile when ``quick``."""
        if not self.quick:
            return self
        sizes = self.memory_mb
        if len(sizes) > 1:
            sizes = (1024,) if 1024 in sizes else sizes[:1]
        return self.replace(
            memory_mb=sizes,
            requests=50,
            warmup=10,
            cold_starts=2,
            concurrency=(1, 2),
            concurrency_requests=40,
            concurrency_memory_mb=sizes[0],
            batch_requests=min(self.batch_requests, 10),
        )
