"""Help texts of the command line's options (``slimbert.cli`` reads them).

HELP: one text per option name, where the name means the same in every stage; STAGE_HELP: what
a name means in the stages where it means something else; ALIASES: extra flag names.
"""

from __future__ import annotations

# One help text per option name, where the name means the same in every stage; STAGE_HELP
# below says what a name means in the stages where it means something else.
HELP = {
    "model": "Base encoder: a folder, a hub id, or all-MiniLM-L6-v2 (shipped offline).",
    "train": "Gold training set: a CSV/TSV/JSONL/Parquet file, a built-in such as "
    "sentiment3:train or tweets3:train, or hf:<id>[:split].",
    "validation": "Validation set: early stopping, export's int8 gate (same forms as --train). "
    "Left out: train uses a built-in's validation split, a `data split` folder's "
    "validation.csv, or holds out --validation-share of --train; distill and export use the "
    "one recorded with the teacher or model (export: 'none' for no gate).",
    "validation_share": "Share of --train held out for validation when --validation is left "
    "out and --train is your own file.",
    "extra_train": "More pair sets trained on together with --train, comma-separated "
    "(e.g. AugSBERT's silver.parquet beside the gold pairs).",
    "data": "Dataset: a file, a built-in <name>:<split> (tweets3, sst3, sentiment3, their "
    "-quick profiles) or hf:<id>[:split].",
    "out": "Output folder; written atomically.",
    "head": "Classification head: linear (pooled output) or gru (frozen encoder + BiGRU).",
    "layers": "Keep only these encoder layers, e.g. 0,5 (a small student trained on gold).",
    "student_layers": "Layers of --student to keep, e.g. 0,5 or 0,2,4.",
    "student": "Student base encoder (same forms as --model).",
    "silver": "Silver set folder written by `slimbert label`.",
    "teacher": "The model learnt from: a trained classifier folder or ONNX bundle (label, "
    "distill); a sentence embedder (sbert train --stage distill, eval's agreement column).",
    "gold": "Mix this gold set into the silver set (rows use their true labels).",
    "loss": "hard: teacher's labels (paper); soft: KL on logits with temperature; mix: both.",
    "labels": "Label names in order, e.g. negative,neutral,positive (default: sorted found).",
    "models": "Comma-separated model folders to compare (vader: the lexicon baseline).",
    "pairs": "Scored pair sets for embedders: files, stsb:<split>, mrpc-target:<split>.",
    "names": "Row labels for the models, comma-separated (default: the folder names).",
    "limit": "Use only the first N rows (smoke runs).",
    "balance": "Class-balanced batches by under-sampling the larger classes.",
    "bucket": "Group examples of similar token length into a batch.",
    "micro_batch_size": "Split each batch into chunks of this size (gradient accumulation).",
    "task": "auto, classification (logits) or embedding (pooling inside the graph).",
    "optimize": "Fuse attention, LayerNorm and GELU with onnxruntime's transformer optimiser.",
    "quantize": "Also build a dynamic int8 model and keep it if it passes the quality gate.",
    "max_f1_drop": "Macro-F1 points int8 may lose before fp32 is kept instead.",
    "max_behaviour_drop": "Behavioural-suite pass-rate points int8 may lose before fp32 is kept.",
    "mask": "Mask topic carriers in the training text: mentions,hashtags,urls,brands.",
    "layer_decay": "Layer-wise lr decay: layer k below the head trains at lr × decay^k (1: off).",
    "typos": "Share of training words given a fresh random typo each epoch (0: off).",
    "freeze_layers": "Freeze the embeddings (1) and the first N-1 transformer layers (N); 0: none.",
    "sets": "More labelled sets, each scored on its own (other domains), e.g. sst3:test.",
    "behaviour": "Run the behavioural suite (3-class sentiment): pass rate by capability.",
    "baseline": "Add VADER, the lexicon baseline, as a row (3-class sentiment).",
    "max_spearman_drop": "Spearman points int8 may lose (embedders) before fp32 is kept.",
    "max_fp32_diff": "Largest allowed |ONNX fp32 - torch| output difference.",
    "gate_rows": "Validation rows used by the quality gate.",
    "gcp": "A gcp-function folder from `slimbert package --target gcp-function`.",
    "cold_starts": "Fresh starts measured per memory size (median and p90 reported).",
    "concurrency": "Instance counts K: K emulators on K ports, one invocation at a time each.",
    "concurrency_requests": "Requests sent per concurrency level.",
    "concurrency_memory_mb": "Memory size used for the concurrency runs.",
    "platform": "CPU allotment by memory: aws (1,769 MB = 1 vCPU), gcp-gen1 or gcp-gen2.",
    "gcp_cpu": "vCPUs for gcp-gen2 (default: Google's default for the memory size).",
    "time_limit_s": "Upper bound in seconds per function and memory size.",
    "quick": "A smoke profile: one size, few requests (used by the tests).",
    "memory_mb": "Memory sizes in MB, e.g. 512,1024,1769,3008.",
    "bundle": "An exported bundle folder (`slimbert export`); for an index, an embedder's.",
    "index": "An index folder from `slimbert index build` (package: shipped as index/).",
    "id_column": "Column holding each text's id (default: the row number).",
    "backend": "exact (numpy), usearch (HNSW) or auto (exact up to --exact-max texts).",
    "exact_max": "Largest corpus that backend auto searches exactly.",
    "dtype": "How vectors are stored: float16 (half the size) or float32.",
    "test": "Pairs the chosen threshold is reported on (precision, recall, F1).",
    "sizes": "Corpus sizes to measure, e.g. 1000,10000,100000.",
    "cross_encoder": "Cross-encoder folder that scores the mined pairs (AugSBERT).",
    "pool": "Unlabelled sentences to mine pairs from: a pair spec (both sides) or a file.",
    "exclude": "Pair specs/files whose sentences are never mined (validation, test).",
    "top_k": "BM25 neighbours mined per pool sentence.",
    "bins": "Score bin edges for balancing, e.g. 0,0.2,0.4,0.6,0.8,1.",
    "bin_factor": "Keep at most this many times the smallest non-empty bin per bin.",
    "min_per_bin": "Never cap a bin below this many pairs.",
    "silver_size": "Keep exactly this many silver pairs, bins as even as possible.",
    "objective": "SBERT training stage: distill (the teacher's embeddings of unlabelled "
    "sentences), nli (SNLI), sts (STS benchmark) or target (your pairs).",
    "normalize": "L2-normalise embeddings (a Normalize module after mean pooling).",
    "evals_per_epoch": "Validation Spearman evaluations per epoch (early stopping).",
    "engine": "local (this process) or ray (a Ray Data actor pool; needs the scale extra).",
    "address": "Ray cluster to join (auto, ray://head:10001); left out: a local Ray on this "
    "machine's cores.",
    "actors": "Ray actors, one CPU each (default: the cluster's CPUs).",
    "export_teacher": "Export the torch teacher to ONNX and label with it: fp32, or int8 behind "
    "export's quality gate.",
    "agreement_rows": "Rows the torch teacher also labels to report the exported one's agreement.",
    "cores": "Core counts to measure on, e.g. 1,2 (threads and CPU affinity limited).",
    "faults": "Also kill a Ray actor and the Ray driver mid-run and check the silver set.",
    "text_column": "Column holding the texts.",
    "label_column": "Column holding the labels.",
    "encoding": "Text encoding of the data files.",
    "max_length": "Longest input in tokens; longer texts are truncated.",
    "epochs": "Most epochs to train (early stopping may end sooner).",
    "patience": "Evaluations without improvement before training stops early.",
    "weight_decay": "AdamW weight decay.",
    "warmup_ratio": "Share of the training steps spent warming the learning rate up.",
    "seed": "Random seed (shuffling, sampling, initialisation).",
    "lr": "Peak learning rate (AdamW, linear decay).",
    "batch_size": "Examples per batch.",
    "shard_size": "Rows per Parquet shard, the unit a rerun resumes from.",
    "temperature": "Softmax temperature of --loss soft and mix.",
    "alpha": "--loss mix: weight of the soft (KL) part; the hard labels get 1 - alpha.",
    "validation_limit": "Use only the first N validation pairs (smoke runs).",
    "results": "Folder the results go under (a new <timestamp> folder each run).",
    "target": "aws-lambda (a zip for the python3.12 runtime) or gcp-function (a folder).",
    "arch": "CPU architecture of the function: x86_64 or arm64 (Graviton).",
    "python": "Python version of the function runtime (its wheels and bytecode).",
    "name": "Function name, used in the file names, the SAM template and the deploy command.",
    "timeout_s": "Function timeout in seconds (SAM template, deploy command).",
    "wheel_cache": "Folder of downloaded runtime wheels (default: the slimbert cache).",
    "max_zip_mb": "Largest zip accepted, in MiB (Lambda's limit for a direct upload).",
    "max_unzipped_mb": "Largest unzipped function accepted, in MiB (Lambda's limit).",
    "bytecode": "Ship compiled cpython-312 bytecode (faster cold start; needs Python 3.12 here).",
    "duration_ms": "A fixed duration per prediction in ms, instead of measured --results.",
    "cold_start_rate": "Share of requests that meet a cold start (INIT billed; needs init ms).",
    "init_ms": "Cold-start INIT duration in ms (default: the --results' own).",
    "requests_per_month": "Monthly traffic priced, in requests.",
    "p99_target_ms": "Latency target: the cheapest memory size whose p99 meets it is named.",
    "free_tier": "Subtract the platforms' monthly free tiers.",
    "prices": "A price table YAML replacing the shipped one (src/slimbert/prices/prices.yaml).",
    "vm": "The always-on VM to compare with (default: the price table's reference_vm).",
    "readme": "A README whose results table (between its markers) is refilled.",
    "platforms": "Price-table platforms to include, comma-separated (default: every one).",
    "inputs": "More result files or folders: eval.json, *.sizes.json, invoke.json.",
    "latency_samples": "Real texts timed per model, after warm-up (p50/p95 reported).",
    "latency_threads": "CPU threads for the latency measurement.",
    "repeats": "Times each measurement is repeated, interleaved; the fastest is kept.",
    "ray": "Also measure the Ray engine against local labelling.",
    "tweet_tokens": "Length in tokens of the text timed for warm latency.",
    "threads": "CPU threads per prediction (or query).",
    "cold_runs": "Fresh processes timed to their first prediction (median and p90).",
    "warm_runs": "Warm batch-1 predictions timed.",
    "package": "Lambda zip from `slimbert package --target aws-lambda`.",
    "requests": "Warm requests sent, one at a time, with real texts.",
    "warmup": "Requests sent before timing starts.",
    "cfs_period_ms": "Window in which the CPU share is enforced (cgroup cpu.cfs_period_us).",
    "dim": "Vector dimension of the synthetic corpus.",
    "queries": "Queries timed per size.",
    "k": "Neighbours per query (recall@k against exact search).",
    "clusters": "Clusters the synthetic unit vectors are drawn around.",
    "connectivity": "usearch HNSW: links per node.",
    "expansion_add": "usearch HNSW: candidates considered while adding.",
    "expansion_search": "usearch HNSW: candidates considered while searching.",
    "gate_confidence": "int8 over --max-f1-drop is refused only if a paired bootstrap over the "
    "validation rows tells the drop from noise at this confidence; 0: the threshold alone.",
}

# What a name means in a stage where it differs from HELP (keyed by the options' stage).
_RAY = "Ray actors, one CPU each (default: the cluster's CPUs)."
STAGE_HELP: dict[str, dict[str, str]] = {
    "train": {"max_length": "Longest input in tokens (left out: 128); recorded with the model."},
    "distill": {
        "validation": "Validation set for early stopping (same forms as --train; left out: the "
        "one recorded with the silver set's teacher).",
        "max_length": "Longest input in tokens (left out: the teacher's).",
    },
    "label": {
        "teacher": "The teacher: a trained classifier folder (--backend torch) or an exported "
        "bundle (--backend onnx).",
        "data": "Unlabelled texts to label: a file, a built-in <name>:<split> (e.g. "
        "sentiment3:pool) or hf:<id>[:split].",
        "out": "Silver set folder (Parquet shards; a rerun resumes after the last one).",
        "backend": "torch (the teacher folder) or onnx (an exported bundle, with onnxruntime).",
        "max_length": "Longest input in tokens (left out: the teacher's own).",
    },
    "cross-encoder": {
        "model": "Base encoder of the cross-encoder: a folder, a hub id, or all-MiniLM-L6-v2.",
        "train": "Gold scored pair sets, comma-separated: stsb:<split>, mrpc-target:<split>, "
        "files.",
        "validation": "Scored pairs for early stopping (Spearman).",
        "out": "Cross-encoder folder; written atomically.",
    },
    "augment": {
        "out": "Folder of the silver pairs (silver.parquet) and their shards.",
        "text_column": "Column of a --pool file holding the sentences.",
    },
    "sbert-train": {
        "model": "A sentence-transformers folder (the previous stage's output), a transformer "
        "folder, or all-MiniLM-L6-v2.",
        "train": "Training pairs: snli:train, stsb:train, mrpc-target:train, a pair file "
        "(sentence1,sentence2,score) or silver.parquet (left out: the --stage's own).",
        "validation": "Scored pairs for early stopping, e.g. stsb:validation (left out: the "
        "--stage's own).",
        "loss": "auto (the --stage's own), softmax or mnrl (nli), cosine (sts, target) or mse "
        "(distill).",
        "teacher": "The sentence embedder whose embeddings --stage distill reproduces.",
        "layers": "Keep only these encoder layers, e.g. 0,2,5.",
        "batch_size": "Pairs per batch (left out: the --stage's own).",
        "lr": "Peak learning rate (left out: the --stage's own).",
        "epochs": "Most epochs (left out: the --stage's own).",
        "evals_per_epoch": "Validation Spearman evaluations per epoch (left out: the --stage's "
        "own).",
        "out": "Sentence-transformers folder; written atomically.",
    },
    "export": {
        "model": "Model to export: a `slimbert train`/`distill` folder (classifier) or a "
        "sentence-transformers folder (embedder).",
        "validation": "Labelled rows (classifiers) or scored pairs (embedders) for the int8 "
        "quality gate; auto: the set recorded with --model; none: no gate, fp32 kept.",
        "out": "Bundle folder; written atomically.",
        "max_length": "Longest input in tokens (left out: the model's own).",
        "opset": "ONNX opset (17 runs on every onnxruntime >= 1.14).",
        "normalize": "Embedders: L2-normalise inside the graph (left out: as the model does).",
    },
    "package": {
        "bundle": "Bundle folder to ship (`slimbert export`).",
        "out": "Folder for the zip (or function folder), its size report, SBOM and template.",
        "memory_mb": "Memory size in MB written into the SAM template and deploy command.",
        "index": "A duplicate index to ship as index/ (`slimbert index build`, same bundle).",
    },
    "cost": {
        "results": "Measured durations: a lambda.json from `slimbert bench lambda`.",
        "platform": "Price-table platform: aws-lambda-x86_64, aws-lambda-arm64, "
        "gcp-functions-gen1, gcp-functions-gen2, azure-functions-flex, or all (left out: the "
        "--results' platform).",
        "memory_mb": "Memory sizes to price in MB, e.g. 512,1024 (left out: the --results' "
        "sizes, else 1024).",
        "batch": "Texts per request to price per 1M predictions, e.g. 32 (left out: every batch "
        "size the --results measured; with --duration-ms, that is each request's duration).",
        "out": "Write <out>.json and <out>.md (left out: print only).",
    },
    "report": {
        "results": "A results root, or one <timestamp> folder of it.",
        "out": "Report folder (left out: <latest results folder>/report).",
        "memory_mb": "Memory sizes a lambda.json must have measured to be used (left out: the "
        "benchmark's sizes).",
        "requests_per_month": "Monthly traffic levels plotted, comma-separated.",
    },
    "invoke": {
        "bundle": "Check the function's answers against this bundle's own (left out: no check).",
        "data": "Texts sent to the function (same forms as --data elsewhere).",
        "out": "Results JSON file.",
        "arch": "The zip's architecture, checked (left out: read from the zip; arm64 runs under "
        "qemu).",
    },
    "eval": {
        "data": "Labelled test set (classifiers) or a pair set (embedders); left out: the test "
        "set recorded with the first model.",
        "out": "Write x.json and the Markdown table x.md (left out: print only).",
        "teacher": "Embedders: the model they were distilled from; each row gains its agreement "
        "(mean cosine) with it.",
    },
    "bench-sampler": {"validation": "Validation set: macro-F1 of each sampler."},
    "bench-label": {
        "teacher": "Torch teacher folder whose labelling speed is measured.",
        "data": "Texts labelled.",
        "limit": "Rows labelled per measurement.",
        "ray_limit": "Rows of the Ray against local comparison (left out: --limit); Ray's "
        "start-up is a fixed cost, so more rows show the steady share.",
    },
    "bench-serving": {
        "bundle": "Bundle served under onnxruntime.",
        "teacher": "Torch teacher served under torch + transformers.",
        "data": "Texts timed.",
    },
    "bench-lambda": {
        "package": "Lambda zip to serve (or --gcp).",
        "teacher": "A torch classifier folder served under the same limits (the baseline).",
        "data": "Texts sent to the function.",
        "requests": "Requests per memory size, one at a time, with real texts.",
        "concurrency_memory_mb": "Memory size for the concurrency runs (left out: 1769 when "
        "measured, else the largest).",
        "batch_sizes": "Texts per request of the batched runs, each 1..64, e.g. 1,8,32,64 "
        "(empty: none).",
        "batch_requests": "Requests per batch size and memory size (--quick: 10).",
        "floor": "Also time fresh starts of the stack floor: the zip with a handler that only "
        "imports numpy, tokenizers and onnxruntime, which no function on that stack can beat.",
    },
    "bench-index": {"threads": "CPU threads per query."},
    "index-build": {
        "data": "Texts to index: a CSV/TSV/JSONL/Parquet file.",
        "bundle": "Embedding bundle that embeds the corpus (`slimbert export`).",
        "out": "Index folder; written atomically.",
    },
    "index-calibrate": {
        "bundle": "Embedding bundle that scores the pairs.",
        "validation": "Pairs the threshold is chosen on (best F1; duplicate = score 1).",
        "index": "Store the chosen threshold in this index's manifest.",
        "out": "Results file (.json, and .md beside it).",
    },
}
STAGE_HELP["label"]["actors"] = STAGE_HELP["augment"]["actors"] = _RAY
# Extra flag names: `slimbert sbert train --stage nli` reads as the paper describes it; the
# option is `objective` because `stage` names the stage itself everywhere else.
ALIASES = {"objective": ["--stage"]}
