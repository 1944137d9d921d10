"""A config before it runs: the form's model, diffs between configs, short descriptions and the
pre-flight estimates (memory, time, MFU)."""
