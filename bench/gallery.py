"""How soon the studio's gallery shows its first page, against a loopback Hub holding 30 pushed models.

    python bench/gallery.py [--rounds 5]

Each round opens the studio in headless Chromium, clicks the Hub tab and times
until the first page's twelve cards are listed, then until all twelve previews
have loaded. The baseline is the same work without a browser or Gradio: the
library's `gallery.search` and `gallery.previews` in this process, against the
same Hub, timed in the same rounds; the preview cache is emptied before each side of each round.
The bar is the first page within 2 s of opening the tab.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import torch
from conftest import chromium, running_demo
from hub_server import LoopbackHub

from nca_gradio import gallery
from nca_gradio.hub import push
from nca_gradio.model import NCA, NCAConfig
from nca_gradio.model_folder import save_model

TOKEN = "hf_BenchToken0123456789"
BAR_SECONDS = 2.0


def push_models(hub: LoopbackHub, folder: Path, count: int = 30) -> None:
    """`count` tiny models, each with a real bundled preview, pushed through the real client."""
    previews = sorted((ROOT / "models").glob("*/preview.gif"))
    for i in range(count):
        model_dir = folder / f"texture-{i:02d}"
        torch.manual_seed(i)
        model = NCA(NCAConfig(channels=4, hidden=8))
        torch.nn.init.normal_(model.w2.weight, std=0.05)
        save_model(model, model_dir)
        (model_dir / "preview.gif").write_bytes(previews[i % len(previews)].read_bytes())
        push(model_dir, f"user{i % 3}/texture-{i:02d}", token=TOKEN, endpoint=hub.url, log=lambda message: None)
        hub.repos[f"user{i % 3}/texture-{i:02d}"].downloads = 1000 - i


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch, LoopbackHub(token=TOKEN) as hub:
        os.environ["HF_HOME"] = str(Path(scratch) / "hf_home")
        os.environ["HF_ENDPOINT"] = hub.url
        os.environ.pop("HF_TOKEN", None)
        push_models(hub, Path(scratch))
        listed, pictured, baseline = [], [], []
        with running_demo() as url, chromium() as browser:
            for _ in range(args.rounds):
                gallery._previews.clear()  # every round cold, both sides: a visitor who opens the tab first
                started = time.perf_counter()
                gallery.previews(gallery.search(endpoint=hub.url), endpoint=hub.url)
                baseline.append(time.perf_counter() - started)
                page = browser.new_page(viewport={"width": 1200, "height": 1000})
                page.goto(url)
                page.wait_for_selector("#nca-start", timeout=60_000)
                gallery._previews.clear()
                started = time.perf_counter()
                page.get_by_role("tab", name="4 · Hub").click()
                page.locator("#nca-gallery button img").nth(gallery.PAGE_SIZE - 1).wait_for(state="visible", timeout=30_000)
                listed.append(time.perf_counter() - started)
                page.wait_for_function(
                    "() => [...document.querySelectorAll('#nca-gallery button img')].every(i => i.src.endsWith('.gif') && i.complete)",
                    timeout=30_000)
                pictured.append(time.perf_counter() - started)
                page.close()
    first, full, base = statistics.median(listed), statistics.median(pictured), statistics.median(baseline)
    print(f"30 models on a loopback Hub, {args.rounds} rounds (medians; min-max)")
    print(f"| {'what':<44} | {'seconds':>7} | {'range':>11} | {'/ baseline':>10} |")
    print(f"|{'-' * 46}|{'-' * 9}|{'-' * 13}|{'-' * 12}|")
    for name, values, median in (("baseline: gallery.search + previews, no UI", baseline, base),
                                 ("tab clicked -> first page listed", listed, first),
                                 ("tab clicked -> all twelve previews shown", pictured, full)):
        print(f"| {name:<44} | {median:>7.2f} | {min(values):>5.2f}-{max(values):<5.2f} | {median / base:>10.1f} |")
    verdict = "met" if first <= BAR_SECONDS else "NOT met"
    print(f"bar: first page within {BAR_SECONDS:g} s of opening the tab: {verdict}")
    return 0 if first <= BAR_SECONDS else 1


if __name__ == "__main__":
    sys.exit(main())
