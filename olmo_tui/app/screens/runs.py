"""The runs screen: every run in the registry with its latest numbers, refreshed once a
second (a thread worker: refreshing notices runs that ended or vanished and records it).

Keys: enter or l: monitor (the run's log and plots) · r relaunch (editor prefilled with the
run's resolved config; the new run records its parent; with runs marked: each relaunched
unchanged, after one question) · R resume (same config, continuing from the latest checkpoint) ·
c cancel (asks; SIGTERM, grace period, SIGKILL; the marked runs if any) · n notes and tags ·
a archive (the marked runs, else the selected one; hidden, `olmo-tui runs --all` lists them) ·
d forget (asks; then asks separately whether to delete the run's files) · / filter · s sort
column · S reverse sort · space marks a run (● in the Run column) · C compares the marked runs
(screens/compare.py) · home / end first / last run · esc back. Narrow terminals drop Tags,
Backend, Preset, Age, then MFU (fit_columns).
"""

from __future__ import annotations

import time
from typing import Callable, Dict, List, Optional

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Input, Static

from olmo_tui.core.launch import run_manager
from olmo_tui.core.backends.base import BackendError
from olmo_tui.core.runs.registry import Registry, RunRecord
from olmo_tui.core.views.run_table import table_row

from .dialogs import AnnotateDialog, ConfirmDialog, TextDialog, help_text, show_text
from .monitor import STATUS_STYLE
from .run_actions import confirm_cancel, open_relaunch_editor, relaunch_marked, resume_run, start_in_app

COLUMNS = ["Run", "Preset", "Backend", "Status", "Step", "Loss", "Tok/s", "MFU", "Age", "Tags"]
SORT_KEYS: Dict[str, Callable[[RunRecord], object]] = {
    "Age": lambda r: -r.created,
    "Run": lambda r: r.id,
    "Preset": lambda r: r.preset or "",
    "Backend": lambda r: r.backend,
    "Status": lambda r: r.status,
    "Step": lambda r: r.latest_step or -1,
    "Loss": lambda r: r.summary.get("loss", float("inf")),
    "Tok/s": lambda r: r.summary.get("tps_total") or r.summary.get("tps") or 0.0,
    "MFU": lambda r: r.summary.get("mfu") or 0.0,
    "Tags": lambda r: ", ".join(r.tags),
}


# Which columns give way first when the terminal is narrow: Tags (shown only when a run has one),
# then Backend, Preset, Age, MFU.
# The Run column keeps at least RUN_MIN_WIDTH; a longer id is shortened in the middle, keeping
# its distinctive end (the date and the random suffix).
PRIORITY = ["Run", "Status", "Step", "Loss", "Tok/s", "MFU", "Age", "Preset", "Backend", "Tags"]
RUN_MIN_WIDTH = 24
CELL_PADDING = 2  # DataTable's cell padding, one column each side


def fit_columns(rows: List[List[str]], width: int) -> "tuple[List[str], int]":
    """The columns to show in `width` cells (in COLUMNS order) and the Run column's width."""
    natural = {name: max([len(name)] + [len(row[COLUMNS.index(name)]) for row in rows]) + CELL_PADDING
               for name in COLUMNS}
    tagged = any(row[COLUMNS.index("Tags")] for row in rows)
    shown = [name for name in PRIORITY if tagged or name != "Tags"]
    while True:
        others = sum(natural[name] for name in shown if name != "Run")
        run_width = min(natural["Run"], width - others)
        # (a short id needs no more than its own width: `olmo-train my-run` names runs so)
        if run_width >= min(natural["Run"], RUN_MIN_WIDTH + CELL_PADDING) or len(shown) == 1:
            break
        shown.pop()
    return [name for name in COLUMNS if name in shown], max(run_width - CELL_PADDING, RUN_MIN_WIDTH)


def shorten(text: str, width: int) -> str:
    """'tiny-cpu-20261207-085058-afa1' in 24 cells: 'tiny-cpu-202…085058-afa1' (the time and
    the random suffix tell runs of one name apart)."""
    if len(text) <= width:
        return text
    tail = min(12, width // 2)
    return text[:width - tail - 1] + "…" + text[-tail:]


class RunsTable(DataTable):
    """The runs as rows: home / end go to the first / last run (DataTable scrolls sideways)."""

    BINDINGS = [Binding("home", "first_row", "First run", show=False),
                Binding("end", "last_row", "Last run", show=False)]

    def action_first_row(self) -> None:
        if self.row_count:
            self.move_cursor(row=0)

    def action_last_row(self) -> None:
        if self.row_count:
            self.move_cursor(row=self.row_count - 1)


class RunsScreen(Screen):
    DEFAULT_CSS = """
    RunsScreen #runs-filter { display: none; }
    RunsScreen.filtering #runs-filter { display: block; }
    RunsScreen #runs-table { height: 1fr; }
    RunsScreen #runs-empty { padding: 1 2; color: $text-muted; }
    """
    # Focus goes to the table whenever the screen shows (the first focusable widget is the
    # hidden filter box: a space typed into it, unseen, emptied the table).
    AUTO_FOCUS = "#runs-table"
    # The footer holds what fits at 80 columns; every key is in `?` and the palette (ctrl+p).
    BINDINGS = [
        Binding("enter", "open", "Monitor", show=False),
        Binding("l", "open", "Logs"),
        Binding("r", "relaunch", "Relaunch"),
        Binding("R", "resume", "Resume"),
        Binding("c", "cancel", "Cancel"),
        Binding("d", "forget", "Forget", show=False),
        Binding("a", "archive", "Archive", show=False),
        Binding("n", "annotate", "Notes/tags", show=False),
        Binding("space", "mark", "Mark", show=False),
        Binding("C", "compare", "Compare"),
        Binding("slash", "filter", "Filter"),
        Binding("s", "sort", "Sort", show=False),
        Binding("S", "reverse_sort", "Reverse", show=False),
        Binding("question_mark,f1", "help", "Help"),
        Binding("escape,q", "back", "Back", show=False),
    ]

    def __init__(self, registry: Optional[Registry] = None) -> None:
        super().__init__(id="runs")
        self.registry = registry or Registry()
        self.runs: List[RunRecord] = []
        self.term = ""
        self.sort_column = "Age"
        self.sort_reverse = False
        self.marked: List[str] = []  # run ids marked for comparing, in the order marked
        self.columns_shown: List[str] = []  # fit to the width on every refresh (fit_columns)

    def compose(self) -> ComposeResult:
        yield Header()
        yield Input(placeholder="filter runs (id, preset, status, backend, sweep)", id="runs-filter")
        yield RunsTable(id="runs-table", cursor_type="row", zebra_stripes=True)
        yield Static("No runs yet: launch one from the presets (l) or the editor (ctrl+l).", id="runs-empty")
        yield Footer()

    def on_mount(self) -> None:
        self.title = "olmo-tui"
        self.sub_title = "runs"
        table = self.query_one(DataTable)
        self.set_interval(1.0, self.refresh_runs)
        self.refresh_runs()
        table.focus()

    # ---- data ---------------------------------------------------------------------------------
    @work(thread=True, exclusive=True, group="runs-refresh", exit_on_error=False)
    def refresh_runs(self) -> None:
        runs = run_manager.refresh_all(self.registry)
        from olmo_tui.core.launch.sweep_queue import ensure_workers

        ensure_workers(self.registry)  # a sweep whose worker was killed gets a new one
        self.app.call_from_thread(self.show_runs, runs)

    def visible_runs(self) -> List[RunRecord]:
        term = self.term.lower()
        # Archived runs stay hidden (`olmo-tui runs --all` lists them); the filter matches tags too.
        runs = [r for r in self.runs if not r.archived and (not term or any(
            term in (v or "").lower() for v in (r.id, r.preset, r.status, r.backend, r.sweep, r.notes, *r.tags)))]
        return sorted(runs, key=SORT_KEYS[self.sort_column], reverse=self.sort_reverse)

    def show_runs(self, runs: List[RunRecord]) -> None:
        self.runs = runs
        table = self.query_one(DataTable)
        selected = self.selected_run()
        visible = self.visible_runs()
        now = time.time()
        rows = []
        for run in visible:
            cells = table_row(run, now) + [", ".join(run.tags)]
            cells[0] = ("● " if run.id in self.marked else "  ") + cells[0]
            rows.append(cells)
        columns, run_width = fit_columns(rows, self.size.width or 80)
        if columns != self.columns_shown:
            table.clear(columns=True)
            for name in columns:
                table.add_column(name, key=name)
            self.columns_shown = columns
        table.clear()
        for run, cells in zip(visible, rows):
            style = STATUS_STYLE.get(run.status)
            if style:
                cells[3] = f"[{style}]{cells[3]}[/]"
            cells[0] = shorten(cells[0], run_width)
            table.add_row(*[cells[COLUMNS.index(name)] for name in columns], key=run.id)
        if selected and any(r.id == selected.id for r in visible):
            table.move_cursor(row=table.get_row_index(selected.id), animate=False)
        self.query_one("#runs-empty").display = not self.runs

    def on_resize(self) -> None:
        if self.runs:
            self.show_runs(self.runs)

    def selected_run(self) -> Optional[RunRecord]:
        table = self.query_one(DataTable)
        if not table.row_count:
            return None
        try:
            key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        except Exception:  # cursor outside the (just rebuilt) table
            return None
        return next((r for r in self.runs if r.id == key), None)

    def select(self, run_id: str) -> None:
        table = self.query_one(DataTable)
        table.move_cursor(row=table.get_row_index(run_id), animate=False)

    # ---- actions ------------------------------------------------------------------------------
    @on(DataTable.RowSelected)
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_open()

    @on(DataTable.HeaderSelected)
    def _header_selected(self, event: DataTable.HeaderSelected) -> None:
        column = str(event.column_key.value)
        self.sort_reverse = not self.sort_reverse if column == self.sort_column else False
        self.sort_column = column
        self.show_runs(self.runs)

    def action_open(self) -> None:
        run = self.selected_run()
        if run:
            self.app.open_monitor(run, self.registry)

    def action_mark(self) -> None:
        run = self.selected_run()
        if not run:
            return
        if run.id in self.marked:
            self.marked.remove(run.id)
        else:
            self.marked.append(run.id)
        self.show_runs(self.runs)

    def action_compare(self) -> None:
        by_id = {run.id: run for run in self.runs}
        chosen = [by_id[run_id] for run_id in self.marked if run_id in by_id]
        if len(chosen) < 2:
            self.notify("mark two or more runs with space, then press C", severity="warning")
            return
        self.app.open_compare(chosen)

    def action_relaunch(self) -> None:
        """The marked runs: each relaunched unchanged (one question); else the editor for one."""
        by_id = {run.id: run for run in self.runs}
        marked = [by_id[run_id] for run_id in self.marked if run_id in by_id]
        if marked:
            relaunch_marked(self, marked)
            return
        run = self.selected_run()
        if run:
            open_relaunch_editor(self.app, run)

    def action_resume(self) -> None:
        run = self.selected_run()
        if run:
            resume_run(self, run)

    def action_cancel(self) -> None:
        """The marked runs (one question for all), else the selected run."""
        by_id = {run.id: run for run in self.runs}
        marked = [by_id[run_id] for run_id in self.marked if run_id in by_id]
        if marked:
            confirm_cancel(self, *marked)
            return
        run = self.selected_run()
        if run:
            confirm_cancel(self, run)

    def action_archive(self) -> None:
        """Archive the marked runs (else the selected one): hidden here and from `olmo-tui runs`
        (`olmo-tui runs --all` lists them, `olmo-tui annotate RUN --unarchive` brings one back)."""
        by_id = {run.id: run for run in self.runs}
        chosen = [by_id[run_id] for run_id in self.marked if run_id in by_id] or [
            run for run in [self.selected_run()] if run]
        for run in chosen:
            self.registry.update(run.id, archived=True)
            run.archived = True
        self.marked = [run_id for run_id in self.marked if run_id not in {run.id for run in chosen}]
        if chosen:
            self.notify(f"archived {len(chosen)} run(s): olmo-tui runs --all lists them")
            self.show_runs(self.runs)

    def action_annotate(self) -> None:
        """Edit the selected run's notes and tags (the registry's; `olmo-tui annotate` too)."""
        run = self.selected_run()
        if not run:
            return

        def save(result) -> None:
            if result is None:
                return
            run.notes, run.tags = result
            self.registry.update(run.id, notes=run.notes, tags=run.tags)
            self.notify(f"{run.id}: " + (", ".join(run.tags) or "no tags") + ("; note saved" if run.notes else ""))
            self.show_runs(self.runs)

        self.app.push_screen(AnnotateDialog(run.id, run.notes, run.tags), save)

    def action_forget(self) -> None:
        run = self.selected_run()
        if not run:
            return
        if not run.terminal:
            self.notify(f"{run.id} is {run.status}: cancel it first (c)", severity="warning")
            return

        def asked_forget(yes: Optional[bool]) -> None:
            if yes:
                # After the first dialog is gone (both use the id "confirm").
                self.app.call_after_refresh(
                    self.app.push_screen, ConfirmDialog(f"Also delete its files?\n{run.run_dir}"), deleted)

        def deleted(delete_files: Optional[bool]) -> None:
            try:
                run_manager.forget_run(run, delete_files=bool(delete_files), registry=self.registry)
            except BackendError as exc:
                self.notify(str(exc), severity="error")
                return
            self.notify(f"forgot {run.id}" + (" and deleted its files" if delete_files else ""))
            self.refresh_runs()

        self.app.push_screen(ConfirmDialog(f"Forget run {run.id}?"), asked_forget)

    def action_filter(self) -> None:
        self.add_class("filtering")
        self.query_one("#runs-filter", Input).focus()

    @on(Input.Changed, "#runs-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.term = event.value
        self.show_runs(self.runs)

    @on(Input.Submitted, "#runs-filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        if not event.value:
            self.remove_class("filtering")
        self.query_one(DataTable).focus()

    def action_sort(self) -> None:
        self.sort_column = COLUMNS[(COLUMNS.index(self.sort_column) + 1) % len(COLUMNS)]
        self.notify(f"sorted by {self.sort_column}", timeout=2)
        self.show_runs(self.runs)

    def action_reverse_sort(self) -> None:
        self.sort_reverse = not self.sort_reverse
        self.show_runs(self.runs)

    def action_back(self) -> None:
        if self.has_class("filtering") or self.term:
            self.term = ""
            self.query_one("#runs-filter", Input).value = ""
            self.remove_class("filtering")
            self.query_one(DataTable).focus()
            return
        if len(self.app.screen_stack) > 1:
            self.app.pop_screen()

    def action_help(self) -> None:
        show_text(self.app, "Help: runs", help_text("Runs", __doc__.split("\n\n")[1], []), "runs-help")

    def palette_commands(self):
        yield ("Logs of the selected run", "Its monitor: log and plots (l, enter)", self.action_open)
        yield ("Relaunch the selected run", "Edit its config, launch a child run (r)", self.action_relaunch)
        yield ("Resume the selected run", "From its latest checkpoint, as a new run (R)", self.action_resume)
        yield ("Cancel the selected run", "SIGTERM, final checkpoint, SIGKILL after 60 s (c)", self.action_cancel)
        yield ("Forget the selected run", "Drop it from the registry, optionally its files (d)", self.action_forget)
        yield ("Archive the marked runs", "Or the selected one: hidden from the table (a)", self.action_archive)
        yield ("Notes and tags of the selected run", "Free text and tags, filterable with / (n)", self.action_annotate)
        yield ("Mark the selected run", "For comparing (space)", self.action_mark)
        yield ("Compare the marked runs", "Plots and config diffs (C)", self.action_compare)
        yield ("Filter runs", "By id, preset, status, backend, sweep, tags, notes (/)", self.action_filter)
        yield ("Sort by the next column", "s; S reverses", self.action_sort)
        yield ("Help: runs", "Keys of this screen (?)", self.action_help)


class LaunchDialog(TextDialog):
    """The exact commands a launch runs; enter (or y) launches, esc goes back."""

    BINDINGS = [Binding("enter,y", "launch", "Launch"), Binding("escape,q,n", "close", "Back")]

    def on_mount(self) -> None:
        from textual.widgets import Label

        self.query_one(".dialog-hint", Label).update("enter launches · esc goes back")

    def action_launch(self) -> None:
        self.dismiss(True)


def confirm_launch(app, request) -> None:
    """Show what a LaunchRequest (from the editor or the preset browser) will run, then start it."""
    import shlex

    from olmo_tui.core.launch.command_preview import headless_command
    from olmo_tui.core.launch.launcher import hook_of, launch
    from olmo_tui.core.runs.registry import runs_root

    parent = request.parent_run_id
    cfg = request.cfg
    try:
        from olmo_tui.core.backends.base import get_backend

        backend = get_backend(cfg.launch.backend)
        probe = RunRecord(id="<new run id>", name=cfg.run_name, backend=backend.name,
                          run_dir=str(runs_root() / "<new run id>"))
        engine_command = shlex.join(backend.command(probe, cfg))
    except Exception as exc:  # an unavailable backend: say so in the dialog, launching will too
        engine_command = f"(cannot build the command: {exc})"
    body = ("Launch this config? It runs as:\n\n" + shlex.join(headless_command(request))
            + "\n\nwhich starts:\n\n" + engine_command)
    if parent:
        body += f"\n\nparent run: {parent}"
    if hook_of(cfg) is not None:
        body += ("\n\nlaunch.notify is set: queued as a one-run sweep, whose worker calls the hook on "
                 + ", ".join(cfg.launch.notify.events))

    def start(registry: Registry) -> RunRecord:
        preset = request.preset_name
        if parent and preset is None:
            found = registry.get(parent)
            preset = found.preset if found else None
        # launch.notify set: queued as a one-run sweep, whose worker calls the hook
        return launch(cfg, preset=preset, parent_id=parent, relation="relaunch" if parent else None,
                      registry=registry)

    def answered(yes: Optional[bool]) -> None:
        if yes:
            start_in_app(app, start)

    app.push_screen(LaunchDialog("Launch", body, "launch-preview"), answered)
