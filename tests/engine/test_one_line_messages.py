"""A user value echoed in a one-line message cannot break the line or drive the terminal: control
characters (newline, escape, NUL) are written as escapes, in the engine's and the CLI's errors."""

from __future__ import annotations

from cli_helpers import run_cli
from engine.config.errors import ConfigError
from engine.errors import UserError, one_line

RAW = "a\x1b[31m\nb\x00c\r"
ESCAPED = "a\\x1b[31m\\nb\\x00c\\r"


def test_one_line_escapes_control_characters_and_keeps_the_rest():
    assert one_line(RAW) == ESCAPED
    assert one_line("naïve / 数据 \t") == "naïve / 数据 \\t"


def test_user_errors_and_config_issues_are_one_line():
    assert str(UserError("trainer.save_folder", f"cannot write {RAW}")) == f"trainer.save_folder: cannot write {ESCAPED}"
    assert list(ConfigError.one("launch.slurm.partition", f"'{RAW}' is bad").lines()) == [
        f"error: launch.slurm.partition: '{ESCAPED}' is bad"]


def test_a_config_file_value_with_control_characters_is_one_line_on_stderr(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('extends = "tiny-cpu"\n[launch]\nbackend = "slurm"\n'
                      '[launch.slurm]\npartition = "gpu\\u001b[2J\\nx"\n')
    result = run_cli("--config", str(config), "--json")
    assert result.returncode == 2
    assert result.stderr == ("error: launch.slurm.partition: 'gpu\\x1b[2J\\nx' holds characters SLURM names "
                             "cannot (spaces, quotes, newlines)\n")
