"""Documented exit codes of the headless CLI (README and docs/GUIDE.md list them)."""

OK = 0
JOB_FAILED = 1
USAGE = 2  # usage or config error: bad flag, unknown field, wrong type, invalid preset
LAUNCH = 3  # launch or backend error: torchrun missing, Beaker unreachable, ...
INTERRUPTED = 130
