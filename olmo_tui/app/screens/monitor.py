"""The run monitor: a header with the exact command, pid, run dir and latest checkpoint; the
throughput panel; the log panel. It re-attaches to any run in the registry, whoever started
it: the log is read from the start through the run's backend (the local file, or Beaker's
log stream), and `[metrics]` lines in it feed the throughput panel.

A thread worker follows the log and hands lines to the panel in batches; another refreshes
the run's status once a second. Both stop when the screen goes away (the run does not)."""

from __future__ import annotations

import re
import shlex
import threading
from pathlib import Path
from typing import List, Optional

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from engine.run_dir import LOG_FILE, METRICS_PREFIX, parse_metrics_line
from olmo_tui.core.backends.base import BackendError, RunStatus, get_backend, sees_local_files
from olmo_tui.core.launch import run_manager
from olmo_tui.core.formatting import age
from olmo_tui.core.runs.health import checkpoint_rows, stack_files, stall_info
from olmo_tui.core.runs.registry import Registry, RunRecord
from olmo_tui.core.runs.torchrun_report import ReportFilter

from ..widgets.alert_banner import AlertBanner
from ..widgets.log_panel import LogPanel
from ..widgets.telemetry import TelemetryLine
from ..widgets.throughput import ThroughputPanel
from .dialogs import help_text, show_text
from .run_actions import confirm_cancel, open_relaunch_editor, resume_run

MONITOR_HELP = ("Run monitor: the run's header (status, command, checkpoint), its throughput plots "
                "and its log, read from the start and followed. The run does not depend on this "
                "screen: leaving it (or the app) leaves the run going.")

STATUS_STYLE = {
    RunStatus.SUCCEEDED: "green", RunStatus.FAILED: "bold red", RunStatus.LOST: "red",
    RunStatus.CANCELLED: "yellow", RunStatus.RUNNING: "cyan", RunStatus.PREEMPTED: "yellow",
}
LINES_PER_HANDOFF = 20_000  # the follower passes lines on in slices of at most this many
# The engine's profiler callback (engine/train/callbacks/profiler.py) prints where each trace went.
PROFILER_TRACE_LINE = re.compile(r"profiler: rank \d+ trace of steps \S+ written to (.+) \(open in ")


class MonitorScreen(Screen):
    # At 80x24 the header is 3 rows (one per line, cut with an ellipsis; `i` shows them whole)
    # and the log gets at least half the width; `w` gives it all of it.
    DEFAULT_CSS = """
    MonitorScreen #run-header { height: auto; max-height: 4; padding: 0 1; background: $boost;
                                text-wrap: nowrap; text-overflow: ellipsis; }
    MonitorScreen #monitor-body { height: 1fr; }
    MonitorScreen #throughput { width: 40%; min-width: 28; max-width: 60; }
    MonitorScreen.wide-log #throughput { display: none; }
    """
    BINDINGS = [
        Binding("c", "cancel", "Cancel"),
        Binding("r", "relaunch", "Relaunch"),
        Binding("R", "resume", "Resume"),
        Binding("w", "wide_log", "Wide log"),
        Binding("i", "details", "Details", show=False),
        Binding("p", "profiler_traces", "Profiler trace", show=False),
        Binding("k", "stack_dumps", "Stacks", show=False),  # the ranks' Python stacks at a stall
        Binding("K", "checkpoint_list", "Checkpoints", show=False),
        Binding("m", "next_metric", "Next metric", show=False),  # a callback's custom metrics
        Binding("question_mark,f1", "help", "Help"),
        Binding("escape,q", "back", "Back", show=False),
    ]

    def __init__(self, run: RunRecord, registry: Optional[Registry] = None) -> None:
        super().__init__(id=f"monitor-{run.id}")
        self.run = run
        self.registry = registry or Registry()
        self.stop = threading.Event()
        self.metrics_seen = 0
        self.latest_checkpoint: Optional[str] = None
        self.profiler_traces: List[str] = []  # paths printed in the log (also on a remote node)

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="run-header")
        yield AlertBanner(id="alert-banner")
        yield TelemetryLine(id="telemetry")
        with Horizontal(id="monitor-body"):
            yield ThroughputPanel(id="throughput")
            yield LogPanel(id="log-panel")
        yield Footer()

    def on_resize(self) -> None:
        self.query_one(TelemetryLine).fit_display()

    def on_mount(self) -> None:
        self.title = "olmo-tui"
        self.sub_title = f"run {self.run.id}"
        self.show_header()
        self.follow_log()
        self.watch_status()
        self.query_one(LogPanel).log_widget.focus()

    def on_unmount(self) -> None:
        self.stop.set()

    # ---- workers ----------------------------------------------------------------------------
    @work(thread=True, group="log-follow", exit_on_error=False)
    def follow_log(self) -> None:
        panel = self.query_one(LogPanel)
        try:
            backend = get_backend(self.run.backend)
            batches = backend.follow_log_batches(self.run, self.stop)  # redrawn once per batch
            # torchrun's failure report (its traceback and ChildFailedError box) stays in the
            # file, as in a headless follow: the engine's own lines already say what happened.
            report = ReportFilter(str(Path(self.run.run_dir) / LOG_FILE)
                                  if sees_local_files(self.run.backend) else None)
            for raw in batches:
                # Line by line only near a report: a busy log's batches pass untouched.
                batch = raw
                if report.holding or any("(exitcode: " in line for line in raw):
                    batch = [shown for line in raw for shown in report.feed(line)]
                metrics = [record for line in batch if METRICS_PREFIX in line
                           if (record := parse_metrics_line(line)) is not None]
                for line in [line for line in batch if "profiler: rank " in line]:
                    if found := PROFILER_TRACE_LINE.search(line):
                        self.profiler_traces.append(found.group(1))
                for start in range(0, len(batch), LINES_PER_HANDOFF):
                    self._hand_off(panel, batch[start:start + LINES_PER_HANDOFF], metrics if start == 0 else [])
            self._hand_off(panel, report.flush(), [])  # a log that ended inside something report-like
        except BackendError as exc:
            if not self.stop.is_set():
                self.app.call_from_thread(self.notify, f"log: {exc}", severity="error")

    def _hand_off(self, panel: LogPanel, batch: List[str], metrics: list) -> None:
        if batch:
            panel.feed(batch)
        if metrics and not self.stop.is_set():
            self.metrics_seen += len(metrics)
            self.app.call_from_thread(self._add_metrics, metrics)

    def action_next_metric(self) -> None:
        self.query_one(ThroughputPanel).pick_next_custom()

    def _add_metrics(self, records: list) -> None:
        panel = self.query_one(ThroughputPanel)
        banner, telemetry = self.query_one(AlertBanner), self.query_one(TelemetryLine)
        for record in records:
            panel.add(record)
            banner.add(record)
            telemetry.add(record)

    @work(thread=True, group="status", exit_on_error=False)
    def watch_status(self) -> None:
        while not self.stop.is_set():
            run = run_manager.refresh_run(self.registry.get(self.run.id) or self.run, self.registry)
            checkpoint = run_manager.latest_checkpoint(run) if sees_local_files(run.backend) else None
            if self.stop.is_set():
                return
            self.app.call_from_thread(self._status_changed, run, checkpoint)
            if run.terminal:
                return
            self.stop.wait(0.5)

    def _status_changed(self, run: RunRecord, checkpoint) -> None:
        self.run = run
        self.latest_checkpoint = str(checkpoint) if checkpoint else None
        self.show_header()

    # ---- header -------------------------------------------------------------------------------
    def show_header(self) -> None:
        run = self.run
        style = STATUS_STYLE.get(run.status, "")
        status = f"[{style}]{run.status}[/]" if style else run.status
        stall = stall_info(run)
        if stall is not None:  # the engine's hang watch: no step for a multiple of the median
            status = f"[bold red]stalled[/] after step {stall.get('step')} (k: the ranks' stacks)"
        first = f"[b]{run.id}[/b]  {status}"
        if run.exit_code is not None:
            first += f"  exit code {run.exit_code}"
        if run.pid:
            first += f"  pid {run.pid}"
        if run.backend == "slurm" and run.workload_id:  # job id, partition, state, nodes
            extra = run.extra
            first += "  SLURM job " + " ".join(str(v) for v in (run.workload_id, extra.get("partition"),
                                                                 extra.get("state"), extra.get("nodes")) if v)
        elif run.workload_id:
            first += f"  workload {run.workload_id}"
        if run.extra.get("url"):
            first += f"  {run.extra['url']}"
        if run.parent_id:
            first += f"  {run.relation or 'child'} of {run.parent_id}"
        checkpoint = Path(self.latest_checkpoint).name if self.latest_checkpoint else "-"
        lines = [first, "command: " + escape(shlex.join(run.argv) if run.argv else "-"),
                 f"checkpoint: {escape(checkpoint)}   run dir: {escape(run.run_dir)}"]
        if run.message and run.status != RunStatus.SUCCEEDED:
            # For a failed run: the line of the log that says why (the engine's error line).
            lines.append(f"[bold red]{escape(run.message[:300])}[/]")
        self.query_one("#run-header", Static).update("\n".join(lines))

    # ---- actions ------------------------------------------------------------------------------
    def action_back(self) -> None:
        self.app.pop_screen()

    def action_cancel(self) -> None:
        confirm_cancel(self, self.run)

    def action_resume(self) -> None:
        resume_run(self, self.run)

    def action_relaunch(self) -> None:
        open_relaunch_editor(self.app, self.run)

    def action_wide_log(self) -> None:
        self.toggle_class("wide-log")
        panel = self.query_one(LogPanel)
        if panel.following:  # a new width re-flows the log: stay at its end
            self.call_after_refresh(panel.log_widget.scroll_end, animate=False)

    def details_text(self) -> str:
        run = self.run
        return "\n\n".join([
            f"{run.id}: {run.status}" + (f", exit code {run.exit_code}" if run.exit_code is not None else ""),
            "command:\n" + (shlex.join(run.argv) if run.argv else "-"),
            f"run dir:\n{run.run_dir}", f"latest checkpoint:\n{self.latest_checkpoint or '-'}",
            *([f"parent: {run.parent_id} ({run.relation})"] if run.parent_id else []),
            *([f"tags: {', '.join(run.tags)}"] if run.tags else []),
            *([f"notes:\n{run.notes}"] if run.notes else []),
            *([f"message:\n{run.message}"] if run.message else [])])

    def action_details(self) -> None:
        show_text(self.app, f"Run {self.run.id}", self.details_text(), "run-details")

    def action_help(self) -> None:
        keys = [("c", "cancel the run (asks; SIGTERM, final checkpoint, SIGKILL after 60 s)"),
                ("r", "relaunch: the editor with this run's config; ctrl+l launches a child"),
                ("R", "resume from the latest checkpoint as a new run (asks)"),
                ("w", "wide log: the log takes the whole width (again: the plots come back)"),
                ("i", "details: the whole command, run dir, checkpoint, message"),
                ("f", "follow the log on/off"), ("/", "filter the log; esc clears"),
                ("e / E", "next / previous error or warning"), ("G", "end of the log, following"),
                ("p", "where the profiler traces are"), ("m", "next custom metric (a callback's)"),
                ("k", "the ranks' Python stacks, dumped when the run stalled"),
                ("K", "the run's checkpoints: step, size, age, and the export command"),
                ("ctrl+p", "command palette"),
                ("esc, q", "back")]
        show_text(self.app, "Help: run monitor", help_text("monitor", MONITOR_HELP, keys), "help")

    def palette_commands(self):
        yield ("Relaunch this run", "Edit its config, launch a child run (r)", self.action_relaunch)
        yield ("Resume this run", "Continue from its latest checkpoint as a new run (R)", self.action_resume)
        yield ("Cancel this run", "SIGTERM, final checkpoint, SIGKILL after 60 s (c)", self.action_cancel)
        yield ("Logs: wide", "The log over the whole width, or back beside the plots (w)", self.action_wide_log)
        yield ("Run details", "Whole command, run dir, checkpoint (i)", self.action_details)
        yield ("Profiler traces", "Where this run's traces are (p)", self.action_profiler_traces)
        yield ("Help: run monitor", "Keys of this screen (?)", self.action_help)

    def action_checkpoint_list(self) -> None:
        """The run's complete checkpoints (newest first) and how to export one to HF."""
        import time

        try:
            folder = run_manager.checkpoint_folder(self.run)
        except (OSError, BackendError, ValueError) as exc:
            self.notify(f"checkpoints: {exc}", title="Checkpoints", severity="error")
            return
        rows = checkpoint_rows(folder)
        if not rows:
            self.notify(f"no complete checkpoint in {folder}", title="Checkpoints", severity="warning")
            return
        now = time.time()
        lines = [f"{'step':>8}  {'size':>10}  {'age':>6}  kind       path"]
        for row in reversed(rows):
            lines.append(f"{row.step:>8}  {row.size_bytes / 2**20:>8.1f}MB  "
                         f"{age(now - row.saved) if row.saved else '-':>6}  "
                         f"{'ephemeral' if row.ephemeral else 'permanent'}  {row.path}")
        lines += ["", "export one to HuggingFace:",
                  f"  olmo-train convert to-hf {shlex.quote(str(rows[-1].path))} DEST_DIR"]
        show_text(self.app, f"Checkpoints of {self.run.id}", "\n".join(lines), "checkpoint-list")

    def action_stack_dumps(self) -> None:
        """The Python stacks the ranks dumped at a stall (or on SIGUSR2)."""
        files = stack_files(self.run)
        if not files:
            self.notify("no stack dump yet: the hang watch writes one when steps stop (docs/GUIDE.md, Run health)",
                        title="Stacks", severity="warning")
            return
        # Each rank's newest dumps (the file grows at each stall).
        body = "\n".join(f"===== {name} =====\n{text[-100_000:]}" for name, text in files.items())
        show_text(self.app, f"Python stacks of {self.run.id}", body, "stack-dumps")

    def action_profiler_traces(self) -> None:
        """Where this run's profiler traces are: paths from its log, and any in a local run dir."""
        local = []
        if sees_local_files(self.run.backend) and self.run.run_dir:
            local = [str(p) for p in sorted(Path(self.run.run_dir).glob("profiler/*.trace.json"))]
        traces = list(dict.fromkeys([*self.profiler_traces, *local]))
        if not traces:
            self.notify("no profiler trace yet: enable trainer.callbacks.profiler (docs/GUIDE.md, Profiling)",
                        title="Profiler", severity="warning")
            return
        self.notify("\n".join(escape(t) for t in traces) + "\nopen in ui.perfetto.dev or chrome://tracing",
                    title="Profiler traces", timeout=30)


def escape(text: str) -> str:
    from rich.markup import escape as rich_escape

    return rich_escape(text)
