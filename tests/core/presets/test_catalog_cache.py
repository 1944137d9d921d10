"""The preset summaries cache (olmo_tui/core/presets/catalog.py): the app's first screen and
`olmo-tui presets` skip building the pydantic schema while no preset or schema file changed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from engine.config.presets import user_dir
from olmo_tui.core.presets.catalog import all_summaries, cache_path

REPO = Path(__file__).resolve().parents[3]
LIST_AND_REPORT = ("import json, sys\nfrom olmo_tui.core.presets.catalog import all_summaries\n"
                   "names = [s.name for s in all_summaries()]\n"
                   "print(json.dumps([names, 'pydantic' in sys.modules]))")


def summaries_in_a_fresh_process():
    out = subprocess.run([sys.executable, "-c", LIST_AND_REPORT], capture_output=True, text=True, cwd=REPO,
                         check=True, timeout=60)
    return json.loads(out.stdout)


def test_second_listing_reads_the_cache_without_the_schema():
    first_names, first_loaded_schema = summaries_in_a_fresh_process()
    assert first_loaded_schema and cache_path().is_file()
    names, loaded_schema = summaries_in_a_fresh_process()
    assert names == first_names and "tiny-cpu" in names
    assert not loaded_schema


def test_an_edited_user_preset_is_summarized_again():
    user_dir().mkdir(parents=True)
    preset = user_dir() / "mine.toml"
    preset.write_text('extends = "tiny-cpu"\ndescription = "first"\n[model]\nn_layers = 2\n')
    [mine] = [s for s in all_summaries() if s.name == "mine"]
    assert (mine.description, mine.layers) == ("first", 2)
    preset.write_text('extends = "tiny-cpu"\ndescription = "second, longer"\n[model]\nn_layers = 3\n')
    [mine] = [s for s in all_summaries() if s.name == "mine"]
    assert (mine.description, mine.layers) == ("second, longer", 3)
    preset.unlink()
    assert "mine" not in [s.name for s in all_summaries()]
