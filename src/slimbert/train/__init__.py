"""Training: models, the loop, fine-tuning, silver labels, distillation, Sentence-BERT,
AugSBERT, evaluation."""
