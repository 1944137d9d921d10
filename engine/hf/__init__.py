"""HuggingFace interop: Llama / OLMo-2 directories <-> engine checkpoints (`olmo-train convert`)."""
