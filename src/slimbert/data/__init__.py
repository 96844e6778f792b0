"""Reading data: one door for files, built-in and Hugging Face sets; pairs, shards, splits."""
