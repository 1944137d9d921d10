"""Sweeps: planning (grid, paired axes, names, up-front validation) and the real queue: a 2x2
grid of tiny-cpu runs through the detached worker, at most two at once, surviving a SIGKILL of
the command that launched it, with the notify hook (a command and a webhook) on every end."""

from __future__ import annotations

import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from cli_helpers import REPO, run_cli
from engine.config import ConfigError
from olmo_tui.core.runs.registry import Registry
from olmo_tui.core.launch.run_manager import run_config
from olmo_tui.core.sweeps.sweep import SweepSpec, load_spec_file, parse_axis, plan, split_values

# Tiny and quick: synthetic tokens, 2 sequences a step, no checkpoint or eval to write.
FAST = ["--data_loader.global_batch_size=256", "--train_module.rank_microbatch_size=256",
        "--trainer.metrics_collect_interval=1", "--dataset.kind=synthetic", "--trainer.no_checkpoints",
        "--trainer.no_evals", "--trainer.max_duration={value: 1, unit: steps}"]
GRID = ["--sweep", "train_module.optim.lr=1e-3,3e-3", "--sweep", "init_seed=0,1"]


def test_grid_zip_names_and_values():
    spec = SweepSpec(preset="tiny-cpu", grid=[parse_axis("train_module.optim.lr=1e-3,3e-3")],
                     zipped=[parse_axis("model.d_model=128,256"), parse_axis("model.n_heads=4,8")])
    variants = plan(spec)
    got = [(v.cfg.train_module.optim.lr, v.cfg.model.d_model, v.cfg.model.n_heads) for v in variants]
    assert got == [(1e-3, 128, 4), (1e-3, 256, 8), (3e-3, 128, 4), (3e-3, 256, 8)]  # zipped axes step together
    assert [v.run_name for v in variants][1] == "tiny-cpu-lr1e-3-d_model256-n_heads8"
    assert len({v.run_name for v in variants}) == 4 and all(v.cfg.run_name == v.run_name for v in variants)
    assert split_values("{value: 3, unit: steps},[1, 2]") == ["{value: 3, unit: steps}", "[1, 2]"]


def test_a_sweep_over_one_source_ratio_renormalises_the_others():
    mixture = ["--dataset.kind=numpy", "--dataset.sources.docs.paths=d.npy", "--dataset.sources.docs.ratio=0.2",
               "--dataset.sources.code.paths=c.npy", "--dataset.sources.code.ratio=0.5",
               "--dataset.sources.web.paths=w.npy", "--dataset.sources.web.ratio=0.3"]
    variants = plan(SweepSpec(preset="tiny-cpu", overrides=mixture,
                              grid=[parse_axis("dataset.sources.docs.ratio=0.1,0.4")]))
    ratios = [{name: s.ratio for name, s in v.cfg.dataset.sources.items()} for v in variants]
    assert ratios == [pytest.approx({"docs": 0.1, "code": 0.5625, "web": 0.3375}),  # code:web stays 5:3
                      pytest.approx({"docs": 0.4, "code": 0.375, "web": 0.225})]
    assert [v.run_name for v in variants] == ["tiny-cpu-docs0.1", "tiny-cpu-docs0.4"]
    assert variants[0].overrides[:3] == ["--dataset.sources.docs.ratio=0.1", "--dataset.sources.code.ratio=0.5625",
                                         "--dataset.sources.web.ratio=0.3375"]
    # an explicit zip of every ratio is taken as written; one that does not sum to 1 is refused
    two = mixture[:5]
    zipped = plan(SweepSpec(preset="tiny-cpu", overrides=[*two, "--dataset.sources.code.ratio=0.8"],
                            zipped=[parse_axis("dataset.sources.docs.ratio=0.25,0.75"),
                                    parse_axis("dataset.sources.code.ratio=0.75,0.25")]))
    assert [(v.cfg.dataset.sources["docs"].ratio, v.cfg.dataset.sources["code"].ratio) for v in zipped] == \
        [(0.25, 0.75), (0.75, 0.25)]
    with pytest.raises(ConfigError, match=r"variant 2 \(docs=0.5 code=0.25\): dataset.sources: "
                                          r"the ratios sum to 0.75"):
        plan(SweepSpec(preset="tiny-cpu", overrides=[*two, "--dataset.sources.code.ratio=0.8"],
                       zipped=[parse_axis("dataset.sources.docs.ratio=0.25,0.5"),
                               parse_axis("dataset.sources.code.ratio=0.75,0.25")]))


def test_sweep_file(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text('preset = "tiny-cpu"\nmax_parallel = 3\noverrides = ["--trainer.no_evals"]\n'
                    '[grid]\ninit_seed = [1, 2, 3]\n[grid.train_module.optim]\nlr = [0.001, 0.002]\n'
                    '[notify]\ncommand = ["true"]\nwebhook_env = "HOOK_URL"\n')
    spec = load_spec_file(str(path))
    variants = plan(spec)
    assert spec.max_parallel == 3 and len(variants) == 6 and spec.notify.webhook_env == "HOOK_URL"
    assert {v.cfg.init_seed for v in variants} == {1, 2, 3} and all(v.cfg.trainer.no_evals for v in variants)
    path.write_text('preset = "tiny-cpu"\n[grid]\ninit_seed = [1]\n[notify]\nwebhook_env = "https://x.example/hook"\n')
    with pytest.raises(ConfigError, match="notify.webhook_env: must name an environment variable"):
        load_spec_file(str(path))


def test_bad_variant_is_one_line_exit_2_and_queues_nothing(isolated_xdg):
    cases = [
        ["sweep", "--preset", "tiny-cpu", "--sweep", "train_module.optim.lr=1e-3,fast", "--sweep", "init_seed=0,1"],
        ["--preset", "tiny-cpu", "--sweep", "init_seed=0,-1"],  # the launch command takes --sweep too
        ["sweep", "--preset", "tiny-cpu", "--sweep-zip", "init_seed=0,1", "--sweep-zip", "model.d_model=64,128,256"],
        ["sweep", "--preset", "tiny-cpu", "--sweep", "train_module.optim.lrr=1e-3,2e-3"],
        ["sweep", "--preset", "tiny-cpu", "--sweep", "init_seed=0,1", "--max-parallel", "0"],
        ["sweep", "--preset", "tiny-cpu", "--sweep", "init_seed=0,1", "--name", "../escape"],
        ["sweep", "--preset", "tiny-cpu", "--sweep", "init_seed=0", "--notify-webhook-env", "UNSET_HOOK_VAR"],
        ["runs", "--sweep", "no-such-sweep"],
    ]
    for args in cases:
        out = run_cli(*args)
        assert out.returncode == 2, (args, out.stderr)
        assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr, (args, out.stderr)
    assert "variant 3 (lr=fast init_seed=0): train_module.optim.lr" in run_cli(*cases[0]).stderr
    runs_dir = Path(os.environ["OLMO_TUI_RUNS_DIR"])
    assert not runs_dir.exists() or not any(runs_dir.iterdir())
    assert Registry().all() == []


def test_dry_run_lists_variants_and_commands(isolated_xdg):
    out = run_cli("sweep", "--preset", "tiny-cpu", *GRID, "--max-parallel", "2", "--dry-run", "--json")
    assert out.returncode == 0, out.stderr
    listed = json.loads(out.stdout)
    assert listed["max_parallel"] == 2 and len(listed["variants"]) == 4
    first = listed["variants"][0]
    assert first["changes"] == {"train_module.optim.lr": "1e-3", "init_seed": "0"}
    assert first["command"] == ["olmo-tui", "--preset", "tiny-cpu", "--train_module.optim.lr=1e-3", "--init_seed=0",
                                "--run_name=tiny-cpu-lr1e-3-init_seed0"]
    assert "torch.distributed.run" in first["engine_command"]
    # The printed command really reproduces the variant.
    again = run_cli(*first["command"][1:], "--dry-run", "--json")
    assert json.loads(again.stdout)["train_module"]["optim"]["lr"] == 1e-3
    assert Registry().all() == []


class Hook(http.server.BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):
        Hook.received.append((self.path, json.loads(self.rfile.read(int(self.headers["Content-Length"])))))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_2x2_sweep_two_at_once_survives_sigkill_of_the_launcher(isolated_xdg, tmp_path):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    secret = "tok-5ecret-in-the-url"
    events = tmp_path / "events.jsonl"
    notify_cmd = f"{sys.executable} -c 'import sys; open(sys.argv[1], \"a\").write(sys.stdin.read() + chr(10))' {events}"
    env = {**os.environ, "SWEEP_HOOK": f"http://127.0.0.1:{server.server_port}/hook/{secret}"}
    launcher = subprocess.Popen(
        [sys.executable, "-m", "olmo_tui", "sweep", "--preset", "tiny-cpu", *FAST, *GRID, "--max-parallel", "2",
         "--name", "grid", "--notify-cmd", notify_cmd, "--notify-webhook-env", "SWEEP_HOOK"],
        cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = launcher.stderr.readline()
    launcher.send_signal(signal.SIGKILL)  # right after launch: the queue and the worker must not care
    launcher.wait(timeout=10)
    launcher.stderr.close()
    launcher.stdout.close()
    assert "4 runs queued, at most 2 at once" in first, first
    registry = Registry()
    worker_pid = int(first.rsplit("worker pid ", 1)[1])

    from olmo_tui.core.launch.sweep_queue import get_sweep, spawn_worker

    assert spawn_worker("grid") == 0  # one worker per sweep: a second one finds the lock taken
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not (get_sweep("grid", registry).ended):
        time.sleep(0.5)
    sweep = get_sweep("grid", registry)
    assert sweep.ended and sweep.worker_pid == worker_pid, sweep  # the first worker did it all, not a restart

    runs = registry.of_sweep("grid")
    assert [r.status for r in runs] == ["succeeded"] * 4, [(r.id, r.status, r.message) for r in runs]
    # Never more than two at once, from the registry's own start/end timestamps.
    moments = sorted([(r.started, 1) for r in runs] + [(r.ended, -1) for r in runs])
    running, peak = 0, 0
    for _, change in moments:
        running += change
        peak = max(peak, running)
    assert peak == 2
    configs = [run_config(r) for r in runs]
    assert {(c.train_module.optim.lr, c.init_seed) for c in configs} == {(1e-3, 0), (1e-3, 1), (3e-3, 0), (3e-3, 1)}

    out = run_cli("runs", "--sweep", "grid", "--json")
    listed = json.loads(out.stdout)
    assert [r["status"] for r in listed] == ["succeeded"] * 4 and {r["sweep"] for r in listed} == {"grid"}
    assert [r["name"] for r in listed] == ["tiny-cpu-lr1e-3-init_seed0", "tiny-cpu-lr1e-3-init_seed1",
                                           "tiny-cpu-lr3e-3-init_seed0", "tiny-cpu-lr3e-3-init_seed1"]

    # The hook: the command got every run's end and the sweep's; so did the webhook.
    got = [json.loads(line) for line in events.read_text().splitlines()]
    assert sorted(e["event"] for e in got) == ["succeeded"] * 4 + ["sweep_done"]
    assert {e["run_id"] for e in got if e["event"] == "succeeded"} == {r.id for r in runs}
    server.shutdown()
    assert sorted(body["event"] for _, body in Hook.received) == ["succeeded"] * 4 + ["sweep_done"]
    # The URL (and the token in it) reached neither the registry nor the worker's log.
    from olmo_tui.core.launch.sweep_queue import log_path

    state = [registry.path, *registry.path.parent.glob("runs.db*"), log_path("grid")]
    assert all(secret.encode() not in Path(p).read_bytes() for p in state if Path(p).exists())



def test_a_look_restarts_the_worker_of_an_orphaned_queue(isolated_xdg):
    """The queue was written but its worker never ran (the launcher died in between, or the
    worker was killed): `olmo-tui runs` starts one, which takes the queue from where it is."""
    from olmo_tui.core.launch.sweep_queue import get_sweep, queue_sweep

    spec = SweepSpec(preset="tiny-cpu", overrides=FAST, grid=[parse_axis("init_seed=0,1")], max_parallel=1)
    queue_sweep("orphan", spec, plan(spec))
    registry = Registry()
    assert [r.status for r in registry.of_sweep("orphan")] == ["queued", "queued"]
    assert get_sweep("orphan", registry).worker_pid is None
    out = run_cli("runs", "--sweep", "orphan", "--json")
    assert out.returncode == 0 and [r["status"] for r in json.loads(out.stdout)] == ["queued", "queued"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and registry.of_sweep("orphan")[0].status == "queued":
        time.sleep(0.2)
    assert get_sweep("orphan", registry).worker_pid, "no worker was started"
    assert registry.of_sweep("orphan")[0].status in ("starting", "running", "succeeded")
    second = registry.of_sweep("orphan")[1]
    assert second.status == "queued"  # max_parallel 1: it waits
    out = run_cli("cancel", "--sweep", "orphan", "--grace", "5", timeout=90)  # the queue, not the training, is under test
    assert out.returncode == 0 and "2 of 2 runs ended" in out.stderr, out.stderr
    while time.monotonic() < deadline and not get_sweep("orphan", registry).ended:
        time.sleep(0.2)
    runs = registry.of_sweep("orphan")
    assert runs[1].status == "cancelled" and runs[1].message == "cancelled before it started"
    assert get_sweep("orphan", registry).ended and all(r.terminal for r in runs)
