"""The transformer (Llama / OLMo-2 blocks) built from engine.config.ModelConfig."""
