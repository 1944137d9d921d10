"""Process groups, the device mesh and parallelize(): TP, activation checkpointing, compile,
FSDP2 / DDP / HSDP. One file per technique; parallelize.py applies them in a fixed order."""
