#!/usr/bin/env bash
# Real-terminal check of the app: start `olmo-tui` in a detached tmux session at 80x24, drive it
# with send-keys and print what capture-pane shows (browser, then the editor). Exits 0 when both
# screens showed their landmarks, 1 otherwise, 77 when tmux is missing (tests skip on 77).
# Usage: scripts/tmux_check.sh [OUT_DIR]   (captures are also written to OUT_DIR if given)
set -u
command -v tmux >/dev/null 2>&1 || { echo "tmux not installed" >&2; exit 77; }
here="$(cd "$(dirname "$0")/.." && pwd)"
python="${PYTHON:-$here/.venv/bin/python}"
out="${1:-}"
session="olmo-tui-check-$$"
socket="olmo-tui-check-$$"
t() { tmux -L "$socket" "$@"; }
cleanup() { t kill-server >/dev/null 2>&1 || true; }
trap cleanup EXIT

# `env -i`-like minimal terminal: TERM as over SSH, no colour hints beyond it.
t -f /dev/null new-session -d -s "$session" -x 80 -y 24 \
  "cd '$here' && TERM=xterm-256color TEXTUAL_ANIMATIONS=none '$python' -m olmo_tui; sleep 5"

wait_for() {  # wait_for TEXT SECONDS: poll capture-pane until TEXT shows
  local deadline=$((SECONDS + $2))
  while (( SECONDS < deadline )); do
    if t capture-pane -p -t "$session" | grep -qF -- "$1"; then return 0; fi
    sleep 0.2
  done
  return 1
}
capture() {  # capture NAME: print the pane (and save it)
  echo "----- $1 (80x24) -----"
  t capture-pane -p -t "$session" | tee ${out:+"$out/$1.txt"}
}

status=0
if wait_for "layers x width" 20; then capture browser; else capture browser; echo "FAIL: browser not shown" >&2; status=1; fi
t send-keys -t "$session" "/" ; sleep 0.3
t send-keys -t "$session" "tiny" ; sleep 0.5
t send-keys -t "$session" Enter ; sleep 0.3
t send-keys -t "$session" Enter
if wait_for "valid config" 20 && wait_for "Save preset" 10; then capture editor; else capture editor; echo "FAIL: editor not shown" >&2; status=1; fi
t send-keys -t "$session" Tab ; sleep 0.3
t send-keys -t "$session" C-q
exit $status
