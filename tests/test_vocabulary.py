"""One vocabulary: the model sizes are named and described once, for `nca train --help` and the studio alike; the
exported live page names its model and says what to do; no studio API output is an anonymous value_N."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from helpers import nca

from nca_gradio.model import PRESETS
from nca_gradio.studio_settings import STUDIO_CPU_ITERS, STUDIO_PRESET
from nca_gradio.ui import preset_choices

pytestmark = pytest.mark.slow  # trainings, app launches or `nca` processes: the fast part leaves them out

ROOT_MODEL = "models/pebbles"


def test_nca_train_help_describes_every_preset_in_the_studios_words():
    result = nca("train", "--help")
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())  # argparse wraps lines
    choices = preset_choices()
    assert [name for _, name in choices] == list(PRESETS)
    for label, name in choices:  # the studio's radio and the CLI's help say the same words: name, size, description
        assert label.startswith(f"{name} · ") and label in text, (label, text)
    assert f"the studio starts at {STUDIO_PRESET} with {STUDIO_CPU_ITERS} iterations" in text


class PageText(HTMLParser):
    """The title and the visible body text of a page (scripts and styles left out)."""

    def __init__(self) -> None:
        super().__init__()
        self.title, self.body, self._in = "", "", []

    def handle_starttag(self, tag, attrs):
        self._in.append(tag)

    def handle_endtag(self, tag):
        if self._in and self._in[-1] == tag:
            self._in.pop()

    def handle_data(self, data):
        where = self._in[-1] if self._in else ""
        if where == "title":
            self.title += data
        elif where not in ("script", "style"):
            self.body += data


def test_the_exported_page_is_titled_with_the_model_names_it_and_says_drag_to_erase(tmp_path):
    from pathlib import Path

    model = Path(__file__).resolve().parents[1] / ROOT_MODEL
    result = nca("export", model, "-o", tmp_path / "live.html")
    assert result.returncode == 0, result.stderr
    page = PageText()
    page.feed((tmp_path / "live.html").read_text())
    assert "pebbles" in page.title
    assert "pebbles" in page.body
    assert re.search(r"drag .*erase.*heals", page.body), page.body.strip()[:200]


def test_no_studio_api_output_is_an_anonymous_value():
    from conftest import running_demo
    from gradio_client import Client

    with running_demo() as url:
        info = Client(url, verbose=False).view_api(return_format="dict", print_info=False)
    names = {endpoint: [r.get("label") for r in spec["returns"]] for endpoint, spec in info["named_endpoints"].items()}
    anonymous = {endpoint: labels for endpoint, labels in names.items() if any(re.fullmatch(r"value_\d+", str(x)) for x in labels)}
    assert not anonymous, anonymous
    assert "Training status" in names["/train"]
