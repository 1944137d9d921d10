"""Training data: token files, the synthetic and embedded datasets, loaders, `olmo-train prepare`.

Modules: `tokenizer` (byte-level and HF tokenizers), `token_source` (token arrays: files,
synthetic, slices), `embedded` (the built-in corpus), `sources` (config -> train/held-out
tokens), `datasets` (fixed-length and padded-document instances), `loader` (the resumable,
rank-sharded training loader), `eval_loader`, `checks` (pre-flight), `prepare` (the CLI).
"""
