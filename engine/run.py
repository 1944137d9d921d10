"""One training run end to end: run directory, pre-flight checks, build, resume, fit, exit code.

Order, and why:
1. Pre-flight (no side effects): engine/preflight.py's torch-free checks (run name, writable run
   dir and save folder, load_path, W&B, the data: missing or corrupt token files, unset ${VAR}s,
   ids beyond the vocab, a tokenizer that disagrees with the config), then whether load_path's
   weights fit the model. A user mistake raises UserError here, before anything is created,
   and the entry prints one line and exits 2. olmo_tui's launcher runs the same torch-free
   checks before it creates a run record.
2. The run directory is created (remembering whether it existed); a run olmo-tui did not
   launch gets engine_run.json and, from rank 0, a copy of its output in stdout.log
   (engine/output_tee.py), so `olmo-tui runs` / `logs` and the monitor see it. config.toml is
   written atomically once the resume is known to be accepted. A UserError found after this
   point, before the first step, removes a run directory this process created, so a failed
   start leaves nothing behind.
3. Build: seed, model, TrainModule, data loaders, callbacks, trainer.
4. Where the weights come from, in this order (one line in the log says which):
     a. the latest complete checkpoint in the save folder: full resume (model, optimizer,
        scheduler, data position, RNG, callback state); load_path is then ignored;
     b. trainer.load_path: weights only (fine-tuning / continued pre-training from another run);
     c. a fresh init from init_seed.
5. fit(); the exit code follows docs/CONTRACTS.md (0, 1, 130 / 143).
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from engine.atomic import write_atomic
from engine.config import ExperimentConfig, to_toml
from engine.errors import UserError
from engine.output_tee import OutputTee, start_tee
from engine.preflight import RunPaths, check_intact, check_run_name, check_writable_dir, preflight_checks  # noqa: F401  (re-exported)
from engine import run_lock
from engine.run_dir import CONFIG_FILE, ENGINE_EXIT_RECORD
from engine.run_marker import runs_root, unmanaged_rank0, write_exit_record, write_start_marker

EXIT_OK = 0
EXIT_FAILED = 1


def resolve_run_dir(run_name: str, run_dir: Optional[str]) -> Path:
    """--run-dir, else <runs root>/RUN_NAME: the runs root the app's registry uses too,
    $OLMO_TUI_RUNS_DIR else $XDG_DATA_HOME/olmo-tui/runs (docs/CONTRACTS.md)."""
    if run_dir:
        return Path(run_dir).expanduser().absolute()
    return (runs_root() / check_run_name(run_name)).absolute()


def preflight(cfg: ExperimentConfig, run_dir: Path) -> RunPaths:
    """Every user mistake we can find without side effects (raises UserError): the torch-free
    checks (engine/preflight.py), then whether the weights at load_path fit the model."""
    from engine import checkpoint

    paths = preflight_checks(cfg, run_dir)
    if cfg.trainer.load_path and checkpoint.latest_checkpoint(paths.save_folder) is None:
        from engine.hf.load_check import check_load_path_fits  # architecture and tokenizer match

        source = checkpoint.resolve_load_path(cfg.trainer.load_path)
        if os.environ.get("RANK", "0") == "0":  # one reader of the whole checkpoint is enough
            check_intact(source, checksums=True)
        check_load_path_fits(cfg, source)
    return paths


def _snapshot_extensions(cfg: ExperimentConfig, run_dir: Path) -> list:
    """The run dir keeps the extensions' code (engine/config/extensions/snapshot.py): written
    the first time, kept on resume. Returns the log lines: what runs, and what changed since."""
    from engine.config.extensions.loader import entry_key, loaded
    from engine.config.extensions.snapshot import SNAPSHOT_DIR, changed_since, hashes, source_hash, write_snapshot

    recorded = hashes(run_dir)
    mine = [ext for key, ext in loaded().items() if key in {entry_key(e) for e in cfg.extensions}]
    for ext in mine:  # loaded from its source although the run dir has a snapshot
        if ext.key in recorded and not ext.source.is_relative_to(run_dir / SNAPSHOT_DIR) \
                and source_hash(ext.source) != recorded[ext.key]:
            raise UserError("extensions", f"extension {ext.key} changed since {run_dir} was started, and this "
                            "command reads the source: name the run (olmo-train RUN_NAME or --run-dir) to "
                            "resume with the run's snapshot, or start a new run for the new code")
    folder = write_snapshot(mine, run_dir)
    lines = [f"extension {key}: sha256 {sha[:12]}" for key, sha in hashes(run_dir).items()]
    return lines + (changed_since(folder) if folder else [])


def _exit_code_for_signal(signum: int) -> int:
    return 128 + signum  # SIGINT 2 -> 130, SIGUSR1 10 -> 138, SIGTERM 15 -> 143


@dataclass
class OwnRecords:
    """What rank 0 of a run olmo-tui did not launch keeps itself (engine/run_marker.py): the start
    time written to engine_run.json (exit.json follows at the end) and the copy of its output."""

    started: Optional[float] = None
    tee: Optional[OutputTee] = None


def run_training(cfg: ExperimentConfig, run_dir: Path, own: Optional[OwnRecords] = None,
                 callbacks: Sequence = ()) -> int:
    """Pre-flight, build, resume and train; returns the exit code. UserError propagates (exit 2)
    after removing a run directory this call created. With `own`, rank 0 of a run olmo-tui did
    not launch writes engine_run.json and starts copying its output to stdout.log (the caller
    closes it)."""
    paths = preflight(cfg, run_dir)
    created = not run_dir.exists()
    env = None
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        run_lock.hold(run_dir)  # this rank counts as the run's until it exits, however it exits
        if own is not None and unmanaged_rank0():  # `olmo-tui runs` / `logs` will find it
            own.started = write_start_marker(run_dir, cfg.run_name)
            own.tee = start_tee(run_dir)
        snapshot_notes = _snapshot_extensions(cfg, run_dir) if cfg.extensions else []
        from engine.train.build import build_trainer  # torch and the model: only past pre-flight

        env = build_trainer(cfg, paths, callbacks)
        env.trainer.log(f"run dir: {run_dir}")
        for line in snapshot_notes:
            env.trainer.log(line)
        env.restore()  # resume / load_path / fresh init, logged in one line
        # Only now: a refused resume must not overwrite the existing run's config.toml.
        if env.is_rank0:
            write_atomic(run_dir / CONFIG_FILE, to_toml(cfg))
    except BaseException as exc:
        if env is not None:
            env.teardown()
        if isinstance(exc, UserError) and created:
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    trainer = env.trainer
    try:
        stop_signal = trainer.fit()
    finally:
        env.teardown()
    if stop_signal is not None:
        # A run launched by olmo-tui resumes as a child run of the registry, not by rerunning
        # torchrun by hand (the launcher names the run in OLMO_TUI_RUN_ID; the engine does not
        # import olmo_tui, it only reads that variable).
        launched = os.environ.get("OLMO_TUI_RUN_ID")
        how = (f"resume with: olmo-tui relaunch {launched} --resume (R in the app)" if launched
               else "rerun the same command to resume")
        trainer.log(f"stopped by {signal.Signals(stop_signal).name} at step {trainer.global_step}; "
                    f"{how}. run dir: {run_dir}")
        return _exit_code_for_signal(stop_signal)
    trainer.log(f"finished at step {trainer.global_step}. run dir: {run_dir}")
    return EXIT_OK


def main_training(cfg: ExperimentConfig, run_dir: Path, callbacks: Sequence = ()) -> int:
    """run_training with the error reporting of docs/CONTRACTS.md; a run olmo-tui did not launch
    also gets its exit.json (in the launcher's format) once its run dir exists, and its output
    copied to stdout.log until then (a traceback escaping from here included: the interpreter
    prints it on the terminal once the copy has stopped)."""
    own = OwnRecords()
    code = EXIT_FAILED  # an exception escaping below is a failed job
    escaping = ""
    started = time.time()
    try:
        code = _report_errors(cfg, run_dir, own, callbacks)
        return code
    except KeyboardInterrupt:
        code = _exit_code_for_signal(signal.SIGINT)
        raise
    except BaseException:
        escaping = traceback.format_exc()
        raise
    finally:
        if own.tee is not None:
            own.tee.close(log_only=escaping)
        if own.started is not None and run_dir.is_dir():
            write_exit_record(run_dir, code, own.started)
        elif not unmanaged_rank0() and os.environ.get("RANK", "0") == "0" and run_dir.is_dir():
            # A launched run's rank 0 leaves its own record: should the wrapper that writes
            # exit.json have been killed, the run still ends in a true state.
            write_exit_record(run_dir, code, started, name=ENGINE_EXIT_RECORD)


def _report_errors(cfg: ExperimentConfig, run_dir: Path, own: OwnRecords, callbacks: Sequence = ()) -> int:
    from engine.train.trainer import AlertStop, NonFiniteLossError

    try:
        return run_training(cfg, run_dir, own, callbacks)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 2
    except (NonFiniteLossError, AlertStop) as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return EXIT_FAILED
    except Exception as exc:
        from engine.disk_errors import describe_storage_failure
        from engine.oom import is_out_of_memory, oom_advice

        storage = describe_storage_failure(exc, run_dir)
        if storage is not None:
            # Disk full or read-only is the storage's state, not a bug: one line, no traceback
            # (and no second failure if stderr is a log file on that same full disk).
            try:
                print(f"error: {storage}", file=sys.stderr, flush=True)
            except OSError:
                pass
            return EXIT_FAILED
        if not is_out_of_memory(exc):
            raise
        # Out of memory is a setting to change, not a bug: the advice instead of a traceback.
        print(oom_advice(cfg, exc), file=sys.stderr, flush=True)
        return EXIT_FAILED
