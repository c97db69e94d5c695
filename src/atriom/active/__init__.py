"""Active: PEFT fine-tuning, evaluation and deployable outputs."""
