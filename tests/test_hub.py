"""Sharing on the Hub: the real huggingface_hub client pushes to and pulls from a loopback Hub over HTTP.

Nothing of ours is mocked. Each test gets its own HF_HOME (cache, token file)
so no real token or cache leaks in, and the token string used here must never
show up in an error message, a card or a file on disk.
"""

from __future__ import annotations

import json
import re
import time
import zipfile
from pathlib import Path

import pytest
import torch
from helpers import model_folder, tiny_model, weights_bytes
from hub_server import LoopbackHub, check_card_metadata
from huggingface_hub import ModelCard, constants
from reference import rollout as reference_rollout
from safetensors.torch import save_file

from nca_gradio import hub as nca_hub
from nca_gradio.card import model_card
from nca_gradio.cli import main
from nca_gradio.hub import HubError, is_repo_id, pull, push
from nca_gradio.loading import load_model, load_start
from nca_gradio.model import NCA
from nca_gradio.model_folder import ModelLoadError, load_folder

TOKEN = "hf_LoopbackSecretToken0123456789"
ROOT = Path(__file__).resolve().parent.parent


# ------------------------------------------------------------------ fixtures


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch) -> Path:
    """A private HF_HOME: cache, token file and env all point into tmp_path."""
    home = tmp_path / "hf_home"
    monkeypatch.setenv("HF_HOME", str(home))
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_CACHE", "HF_ENDPOINT", "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(home / "token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(home / "stored_tokens"))
    return home


@pytest.fixture
def server():
    """A fresh Hub per test that needs a token for writes and private reads."""
    with LoopbackHub(token=TOKEN) as hub:
        yield hub
    assert not hub.unknown, f"the client called endpoints the loopback hub does not know: {hub.unknown}"


@pytest.fixture(scope="module")
def shared_server():
    with LoopbackHub(token=TOKEN) as hub:
        yield hub
    assert not hub.unknown, f"the client called endpoints the loopback hub does not know: {hub.unknown}"


@pytest.fixture(scope="module")
def pushed(shared_server, tmp_path_factory, pebbles_path, tiny_config):
    """A model trained for 2 iterations (so it has training.json and target.png, no preview), pushed once."""
    from nca_gradio.images import load_target
    from nca_gradio.train import Trainer

    folder = tmp_path_factory.mktemp("trained") / "pebbles"
    config = tiny_config(iters=2, preset="seed", size=16)  # the card test reads these: seed, 16 x 16, 168 parameters
    target = load_target(pebbles_path, config.target_size)
    trainer = Trainer(target, config, log=lambda message: None)
    trainer.train(None)
    trainer.save(folder, target)
    notices: list[str] = []
    url = push(folder, "alice/pebbles", token=TOKEN, endpoint=shared_server.url, log=notices.append)
    return {"folder": folder, "url": url, "repo": "alice/pebbles", "notices": notices}


def rollout(model: NCA, steps: int = 24) -> torch.Tensor:
    x = torch.zeros(1, model.channels, 24, 24)
    x[:, :, 12, 12] = 1.0
    return reference_rollout(model, x, steps, torch.Generator().manual_seed(0))


def hub_error(call, *args, **kwargs) -> str:
    """The message of the HubError a call raises, checked to be one line without the token."""
    with pytest.raises(HubError) as info:
        call(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message and TOKEN not in message, message
    return message


# ------------------------------------------------------------------ push and pull


@pytest.mark.slow
def test_pushed_model_pulls_into_a_fresh_cache_and_rolls_out_bit_for_bit(pushed, shared_server, tmp_path):
    folder = pull(pushed["repo"], cache_dir=tmp_path / "fresh_cache", endpoint=shared_server.url)
    assert folder.is_relative_to(tmp_path / "fresh_cache")
    expected = ["README.md", "config.json", "model.safetensors", "preview.gif", "target.png", "training.json"]
    assert sorted(p.name for p in folder.iterdir()) == expected
    original, pulled = load_folder(pushed["folder"]), load_folder(folder)
    for name, tensor in original.state_dict().items():
        assert torch.equal(tensor, pulled.state_dict()[name]), name
    assert torch.equal(rollout(original), rollout(pulled))
    assert not torch.equal(rollout(original), rollout(original, steps=0)), "a trained model changes the grid"


def test_push_uploads_the_model_files_a_card_and_a_generated_preview_but_not_the_training_state(pushed, shared_server):
    files = shared_server.files(pushed["repo"])
    assert {"config.json", "model.safetensors", "README.md", "preview.gif", "target.png", "training.json"} <= set(files)
    assert "training_state.safetensors" not in files
    assert files["model.safetensors"] == (pushed["folder"] / "model.safetensors").read_bytes()
    assert files["preview.gif"][:6] == b"GIF89a"
    assert not (pushed["folder"] / "preview.gif").exists(), "push must not write into the model folder"
    assert any("preview.gif" in notice for notice in pushed["notices"])
    assert pushed["url"] == f"{shared_server.url}/{pushed['repo']}"


def test_push_shares_the_live_page_with_the_models_own_weights_and_the_card_links_it(pushed, shared_server):
    from nca_gradio.live import _script_json, model_json

    files = shared_server.files(pushed["repo"])
    page = files["live.html"].decode()
    assert page.startswith("<!DOCTYPE html>") and "NCALive.mount" in page
    assert _script_json(model_json(load_folder(pushed["folder"]), pushed["repo"])) in page  # these weights, not another model's
    assert "[`live.html`](live.html)" in files["README.md"].decode()


def test_a_trained_folders_card_links_the_live_page_written_beside_it(tmp_path):
    from nca_gradio.card import write_card

    folder = model_folder(tmp_path / "m", preview=False)
    write_card(folder)
    assert "(live.html)" in (folder / "README.md").read_text() and (folder / "live.html").read_text().startswith("<!DOCTYPE html>")


def test_card_front_matter_is_valid_and_links_files_that_exist_in_the_repo(pushed, shared_server, tmp_path):
    text = shared_server.files(pushed["repo"])["README.md"].decode()
    card_path = tmp_path / "README.md"
    card_path.write_text(text)
    card = ModelCard.load(card_path)
    assert card.data.library_name == "nca-gradio"
    assert card.data.license == "mit"
    assert {"neural-cellular-automata", "texture-synthesis", "pytorch"} <= set(card.data.tags)
    assert "![growing](preview.gif)" in card.text and "![target](target.png)" in card.text
    for link in ("preview.gif", "target.png"):
        assert link in shared_server.files(pushed["repo"])
    assert "POST /api/validate-yaml" in shared_server.requests  # the Hub validated it on push


def test_card_shows_training_settings_size_quality_and_usage(pushed, shared_server):
    text = shared_server.files(pushed["repo"])["README.md"].decode()
    training = json.loads((pushed["folder"] / "training.json").read_text())
    assert "| preset | seed |" in text and "| loss | patch |" in text and "| iterations | 2 |" in text
    assert "| training size | 16 x 16 |" in text and f"| device | {training['device']} |" in text
    assert "| time taken |" in text
    assert "168 parameters" in text
    assert "## Quality" in text and "| combined |" in text
    assert 'from nca_gradio.loading import load_model' in text and 'load_model("alice/pebbles")' in text
    assert TOKEN not in text


def test_card_gives_the_nca_train_command_that_trains_the_same_config(pushed, shared_server):
    import re
    import shlex

    from nca_gradio.cli import build_parser
    from nca_gradio.train import TrainConfig
    from nca_gradio.train_options import config_from_args

    text = shared_server.files(pushed["repo"])["README.md"].decode()
    command = re.search(r"`nca train ([^`]+)`", text).group(1)
    args = build_parser().parse_args(["train", *shlex.split(command), "--device", "cpu"])  # the recipe the model had
    log = json.loads((pushed["folder"] / "training.json").read_text())
    recorded = TrainConfig.from_dict(log["config"]).to_dict()  # lists back to tuples
    rebuilt = config_from_args(args).to_dict()
    assert recorded["pool_size"] != TrainConfig().pool_size  # so the command must carry it
    differing = {k for k in recorded if k not in ("device", "precision") and rebuilt[k] != recorded[k]}
    assert differing == {"steps_min", "steps_max"}  # not settable from the CLI...
    assert all(f"`{k}=" in text for k in differing), text  # ...so the card names them
    assert rebuilt["precision"] == log["precision"]  # what "auto" became


def test_a_budgeted_run_is_trained_again_with_its_time_limit_as_an_option():
    import re
    import shlex

    from nca_gradio.card import _reproduce_line
    from nca_gradio.cli import build_parser
    from nca_gradio.train_options import config_from_args

    budgeted = _reproduce_line({"time_budget": 90.0, "iters": 3000, "pool_size": 32}, "patch")
    command = re.search(r"`nca train ([^`]+)`", budgeted).group(1)
    rebuilt = config_from_args(build_parser().parse_args(["train", *shlex.split(command), "--device", "cpu"]))
    assert (rebuilt.time_budget, rebuilt.iters, rebuilt.pool_size) == (90.0, 3000, 32)
    assert "time_budget=" not in budgeted  # an option, not a Python argument
    assert "--time" not in _reproduce_line({"iters": 3000}, "patch")  # no budget: no --time 0, which would not parse


@pytest.mark.parametrize(("recorded", "given"), [
    ("pebbles (bundled)", "models/pebbles"),  # the studio's label of a bundled model: its folder in a checkout
    ("alice/reeds (Hub)", "alice/reeds"),  # a pulled one: its repo id
    ("my-runs/pebbles", "my-runs/pebbles"),  # what nca train --from was given stays
])
def test_a_run_started_from_a_model_is_trained_again_from_a_name_nca_train_takes(recorded, given):
    import re
    import shlex

    from nca_gradio.card import _reproduce_line

    line = _reproduce_line({"start_from": recorded, "preset": "seed"}, "patch")
    command = shlex.split(re.search(r"`nca train ([^`]+)`", line).group(1))
    assert command[command.index("--from") + 1] == given


def test_a_run_started_from_a_model_the_studio_trained_says_which_folder_to_give():
    from nca_gradio.card import _reproduce_line

    line = _reproduce_line({"start_from": "pebbles · fast · 300 it", "preset": "fast"}, "patch")
    assert "--from MODEL" in line and "the studio's model 'pebbles · fast · 300 it', unzipped from its download" in line


def test_logs_older_than_the_precision_setting_name_the_precision_they_trained_in():
    from nca_gradio.card import trained_precision

    assert trained_precision({"device": "cuda:0"}) == "bfloat16"  # the GPU always autocast
    assert trained_precision({"device": "cpu"}) == "float32"
    assert trained_precision({"device": "cpu", "precision": "bfloat16"}) == "bfloat16"


@pytest.mark.slow  # 17 s measured
def test_card_shows_the_stability_figures_of_quality_json_and_push_uploads_it(server, tmp_path):
    folder = model_folder(tmp_path / "m")
    (folder / "target.png").write_bytes((Path(__file__).parent / "data" / "pebbles.png").read_bytes())
    figures = {"combined_1024": 1.234, "combined_4096": 1.5, "combined_healed": 1.3, "heal_ratio": 1.05}
    (folder / "quality.json").write_text(json.dumps(figures))
    push(folder, "alice/stable", token=TOKEN, endpoint=server.url)
    files = server.files("alice/stable")
    text = files["README.md"].decode()
    assert "| combined after 1,024 steps | 1.23 |" in text and "| healed / undamaged | 1.05 |" in text
    assert json.loads(files["quality.json"]) == figures
    (folder / "quality.json").write_text('{"combined_1024": "high"')  # damaged: the table is left out, the card still made
    assert "combined after 1,024 steps" not in model_card(folder) and "## Quality" in model_card(folder)


def test_card_of_a_bare_folder_skips_what_it_cannot_know(tmp_path):
    text = model_card(model_folder(tmp_path / "bare"))
    assert "## Training" not in text and "## Quality" not in text and "![target]" not in text
    assert "![growing](preview.gif)" in text and "168 parameters" in text


def test_a_repo_id_loads_through_load_model_and_a_folder_of_that_name_wins(pushed, shared_server, tmp_path, monkeypatch):
    model = load_model(pushed["repo"], endpoint=shared_server.url)
    assert torch.equal(rollout(model), rollout(load_folder(pushed["folder"])))
    monkeypatch.chdir(tmp_path)
    model_folder(tmp_path / "alice" / "pebbles", seed=7)
    local = load_model("alice/pebbles", endpoint="http://127.0.0.1:9")  # nothing listens there: the folder is used
    assert torch.equal(rollout(local), rollout(tiny_model(7)))


def test_a_run_starts_from_a_model_on_the_hub_by_its_repo_id(pushed, shared_server, monkeypatch, pebbles_path, tiny_config):
    from nca_gradio.images import load_target
    from nca_gradio.train import TrainConfig, Trainer

    monkeypatch.setenv("HF_ENDPOINT", shared_server.url)
    chosen = {k: v for k, v in tiny_config().to_dict().items() if k not in ("preset", "perception", "fire_rate", "device")}
    model = load_start(pushed["repo"])
    config = TrainConfig.for_device("cpu", model.config, **{**chosen, "start_from": pushed["repo"]})
    assert (config.preset, config.start_from) == ("seed", "alice/pebbles")  # the pushed model's size, and its name as given
    trainer = Trainer(load_target(pebbles_path, config.target_size), config, log=lambda message: None, start=model)
    assert torch.equal(trainer.model.w2.weight, load_folder(pushed["folder"]).w2.weight)


def test_a_missing_folder_that_reads_owner_name_says_both_were_looked_for(server, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(HubError) as caught:
        load_model("my-models/pebbels", endpoint=server.url)
    assert str(caught.value).startswith("there is no folder my-models/pebbels here, and my-models/pebbels was not found")


def test_private_repo_needs_the_token_to_pull(server, tmp_path, monkeypatch):
    push(model_folder(tmp_path / "m"), "alice/secret", private=True, token=TOKEN, endpoint=server.url)
    assert server.repos["alice/secret"].private
    message = hub_error(pull, "alice/secret", endpoint=server.url)
    assert "HF_TOKEN" in message and "--token" in message
    monkeypatch.setenv("HF_TOKEN", TOKEN)  # the token comes from the environment when not passed
    assert (pull("alice/secret", endpoint=server.url) / "model.safetensors").exists()


def test_private_push_makes_an_existing_public_repo_private(server, tmp_path):
    folder = model_folder(tmp_path / "m")
    push(folder, "alice/shared", token=TOKEN, endpoint=server.url)
    assert not server.repos["alice/shared"].private
    push(folder, "alice/shared", private=True, token=TOKEN, endpoint=server.url)
    assert server.repos["alice/shared"].private
    push(folder, "alice/shared", token=TOKEN, endpoint=server.url)  # without --private: the visibility is kept
    assert server.repos["alice/shared"].private


def test_pull_of_a_revision_gets_that_commit(server, tmp_path):
    config, weights = weights_bytes(seed=1)
    first = server.seed("alice/versions", {"config.json": config, "model.safetensors": weights})
    server.commit("alice/versions", {"model.safetensors": weights_bytes(seed=2)[1]})
    old = load_folder(pull("alice/versions", revision=first, endpoint=server.url))
    assert torch.equal(rollout(old), rollout(tiny_model(1)))
    assert torch.equal(rollout(load_folder(pull("alice/versions", endpoint=server.url))), rollout(tiny_model(2)))


# ------------------------------------------------------------------ errors


def test_missing_repo(server):
    message = hub_error(pull, "alice/nothing-here", endpoint=server.url)
    assert "alice/nothing-here was not found" in message and "check the repo id" in message


def test_missing_revision(server):
    config, weights = weights_bytes()
    server.seed("alice/model", {"config.json": config, "model.safetensors": weights})
    message = hub_error(pull, "alice/model", revision="v9", endpoint=server.url)
    assert "no revision 'v9'" in message and "--revision" in message


def test_missing_files(server):
    config, weights = weights_bytes()
    server.seed("alice/no-config", {"model.safetensors": weights})
    assert "has no config.json" in hub_error(pull, "alice/no-config", endpoint=server.url)
    server.seed("alice/no-weights", {"config.json": config, "README.md": b"# empty\n"})
    assert "has no model.safetensors" in hub_error(pull, "alice/no-weights", endpoint=server.url)


def test_a_file_listed_but_not_served_is_reported(server):
    config, weights = weights_bytes()
    server.seed("alice/flaky", {"config.json": config, "model.safetensors": weights})
    server.unserved.add("model.safetensors")
    message = hub_error(pull, "alice/flaky", endpoint=server.url)
    assert "has no model.safetensors" in message


def test_pickle_only_repo_is_refused_before_downloading(server):
    config, _ = weights_bytes()
    server.seed("mallory/pickles", {"config.json": config, "pytorch_model.bin": b"\x80\x04 not really a pickle"})
    message = hub_error(pull, "mallory/pickles", endpoint=server.url)
    assert "only pickle weights (pytorch_model.bin)" in message and "unsafe" in message
    assert not [r for r in server.requests if "/resolve/" in r], "nothing may be downloaded"


def test_malformed_config_is_refused_by_the_loader(server):
    _, weights = weights_bytes()
    server.seed("mallory/bad-json", {"config.json": b"{not json", "model.safetensors": weights})
    with pytest.raises(ModelLoadError, match="mallory/bad-json: config.json is not valid JSON"):
        load_model("mallory/bad-json", endpoint=server.url)
    server.seed("mallory/huge", {"config.json": b'{"channels": 4, "hidden": 100000000}', "model.safetensors": weights})
    with pytest.raises(ModelLoadError, match="hidden must be an integer"):
        load_model("mallory/huge", endpoint=server.url)
    extra = b'{"channels": 4, "hidden": 8, "__class__": "os.system"}'
    server.seed("mallory/extra", {"config.json": extra, "model.safetensors": weights})
    with pytest.raises(ModelLoadError, match="unknown keys: __class__"):
        load_model("mallory/extra", endpoint=server.url)


def test_weights_that_do_not_match_the_config_are_refused(server):
    _, weights = weights_bytes()  # 4 channels, 8 hidden
    server.seed("mallory/shapes", {"config.json": b'{"channels": 4, "hidden": 16}', "model.safetensors": weights})
    with pytest.raises(ModelLoadError, match=r"mallory/shapes: model.safetensors: w1\.\w+ has shape .* but config.json asks for"):
        load_model("mallory/shapes", endpoint=server.url)


def test_damaged_weights_are_refused(server, tmp_path):
    config, _ = weights_bytes()
    bad = tmp_path / "bad.safetensors"
    tensors = {"w1.weight": torch.full((8, 16, 1, 1), float("nan")), "w1.bias": torch.zeros(8), "w2.weight": torch.zeros(4, 8, 1, 1)}
    save_file(tensors, str(bad))
    server.seed("mallory/nan", {"config.json": config, "model.safetensors": bad.read_bytes()})
    with pytest.raises(ModelLoadError, match="NaN or inf"):
        load_model("mallory/nan", endpoint=server.url)


def test_push_without_a_token_or_with_a_wrong_one(server, tmp_path):
    folder = model_folder(tmp_path / "m")
    message = hub_error(push, folder, "alice/new", endpoint=server.url)
    assert "401" in message and "missing" in message and "HF_TOKEN" in message
    message = hub_error(push, folder, "alice/new", token=TOKEN[::-1], endpoint=server.url)
    assert "rejected" in message and "--token" in message and TOKEN[::-1] not in message
    assert "alice/new" not in server.repos


def test_a_token_without_write_access(server, tmp_path):
    server.read_only = True
    message = hub_error(push, model_folder(tmp_path / "m"), "alice/new", token=TOKEN, endpoint=server.url)
    assert "403" in message and "write token" in message


def test_a_broken_folder_is_never_pushed(server, tmp_path):
    with pytest.raises(ModelLoadError, match="no such model folder"):
        push(tmp_path / "nowhere", "alice/new", token=TOKEN, endpoint=server.url)
    assert server.requests == []


def test_pull_with_a_wrong_token(server):
    config, weights = weights_bytes()
    server.seed("alice/model", {"config.json": config, "model.safetensors": weights})
    message = hub_error(pull, "alice/model", token=TOKEN[::-1], endpoint=server.url)
    assert "rejected" in message and "HF_TOKEN" in message and TOKEN[::-1] not in message


def test_rate_limiting(server, tmp_path):
    config, weights = weights_bytes()
    server.seed("alice/model", {"config.json": config, "model.safetensors": weights})
    server.rate_limited = True
    message = hub_error(pull, "alice/model", endpoint=server.url)
    assert "rate limiting" in message and "429" in message and "wait 55 s" in message
    assert "rate limiting" in hub_error(push, model_folder(tmp_path / "m"), "alice/model", token=TOKEN, endpoint=server.url)


def test_the_loopback_validator_refuses_bad_metadata(pushed, shared_server):
    card = shared_server.files(pushed["repo"])["README.md"].decode()
    assert check_card_metadata(card) == ([], [])
    assert check_card_metadata(card.replace("license: mit", "license: banana"))[0]
    assert check_card_metadata(card.replace("tags:\n", "tags: [oops\n"))[0]


def test_offline_pull_uses_the_cache_and_says_so(tmp_path):
    config, weights = weights_bytes(seed=3)
    with LoopbackHub() as hub:
        hub.seed("alice/model", {"config.json": config, "model.safetensors": weights})
        endpoint = hub.url
        online = pull("alice/model", endpoint=endpoint)
    notices: list[str] = []
    offline = pull("alice/model", endpoint=endpoint, log=notices.append)  # the server is gone now
    assert offline == online
    assert notices == [f"cannot reach {endpoint}: using the cached copy of alice/model"]
    assert torch.equal(rollout(load_folder(offline)), rollout(tiny_model(3)))
    message = hub_error(pull, "alice/never-pulled", endpoint=endpoint)
    assert "not in the local cache" in message and "connection" in message


def test_a_hub_that_answers_503_is_treated_like_offline(server):
    config, weights = weights_bytes(seed=4)
    server.seed("alice/model", {"config.json": config, "model.safetensors": weights})
    online = pull("alice/model", endpoint=server.url)
    server.down = True
    notices: list[str] = []
    assert pull("alice/model", endpoint=server.url, log=notices.append) == online
    assert notices == [f"{server.url} answered 503: using the cached copy of alice/model"]


def test_push_when_the_hub_is_unreachable(tmp_path):
    with LoopbackHub() as hub:
        endpoint = hub.url
    message = hub_error(push, model_folder(tmp_path / "m"), "alice/model", token=TOKEN, endpoint=endpoint)
    assert f"cannot reach {endpoint}" in message


def test_bad_repo_ids_are_refused_before_any_request(server, tmp_path):
    for bad in ("no-owner", "a/b/c", "../etc", "a/..", "a/b c"):
        assert not is_repo_id(bad)
        assert "is not a Hub repo id" in hub_error(pull, bad, endpoint=server.url)
    assert server.requests == []
    assert is_repo_id("alice/pebbles-v1.2") and is_repo_id("models/pebbles")


def test_a_missing_local_path_that_is_no_repo_id_reads_as_a_missing_folder(tmp_path):
    with pytest.raises(ModelLoadError, match="no such model folder"):
        load_model(str(tmp_path / "nowhere"))


def test_the_token_never_reaches_disk(pushed, shared_server, isolated, tmp_path):
    pull(pushed["repo"], token=TOKEN, endpoint=shared_server.url)
    for path in [*isolated.rglob("*"), *pushed["folder"].rglob("*")]:
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), path
    assert all(TOKEN.encode() not in data for data in shared_server.files(pushed["repo"]).values())


def test_token_falls_back_to_the_login_store(server, tmp_path, isolated):
    isolated.mkdir(parents=True, exist_ok=True)
    (isolated / "token").write_text(TOKEN)
    assert nca_hub.resolve_token() == TOKEN
    assert push(model_folder(tmp_path / "m"), "alice/stored", endpoint=server.url).endswith("alice/stored")


# ------------------------------------------------------------------ command line


def test_cli_push_pull_and_grow_a_repo_id(server, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_ENDPOINT", server.url)  # read at call time, not at import
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    folder = model_folder(tmp_path / "m", seed=5)
    assert main(["push", str(folder), "alice/cli", "--private"]) == 0
    assert f"{server.url}/alice/cli" in capsys.readouterr().out
    assert server.repos["alice/cli"].private

    out_dir = tmp_path / "pulled"
    assert main(["pull", "alice/cli", "-o", str(out_dir)]) == 0
    assert "168 parameters" in capsys.readouterr().out
    assert torch.equal(rollout(load_folder(out_dir)), rollout(tiny_model(5)))

    image = tmp_path / "grown.png"
    assert main(["grow", "alice/cli", "-o", str(image), "--size", "16", "--steps", "4"]) == 0
    assert image.exists()


def test_cli_hub_errors_are_one_line_with_status_2(server, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    assert main(["pull", "alice/missing"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("nca: error: alice/missing was not found") and "\n" not in err
    assert main(["push", str(model_folder(tmp_path / "m")), "alice/x", "--token", TOKEN[::-1]]) == 2
    err = capsys.readouterr().err.strip()
    assert "rejected" in err and "\n" not in err and TOKEN[::-1] not in err
    assert main(["push", str(tmp_path / "m"), "not-a-repo-id"]) == 2
    assert "is not a Hub repo id" in capsys.readouterr().err


# ------------------------------------------------------------------ hardening (issue 19)


def test_a_repo_larger_than_the_cap_is_refused_before_any_download(server, isolated):
    config, _ = weights_bytes()
    server.seed("mallory/huge", {"config.json": config, "model.safetensors": bytes(nca_hub.MAX_PULL_BYTES + 1)})
    message = hub_error(pull, "mallory/huge", endpoint=server.url)
    limit = nca_hub.MAX_PULL_BYTES / 2**20
    assert f"mallory/huge is too large to pull ({limit:.1f} MB of model files, at most {limit:.0f} MB)" in message
    assert not [r for r in server.requests if "/resolve/" in r], "nothing may be downloaded"
    blobs = [p for p in isolated.rglob("*") if p.is_file() and "blobs" in p.parts]
    assert blobs == []


def test_a_stalled_hub_times_out_with_one_line(server, monkeypatch, capsys):
    config, weights = weights_bytes()
    server.seed("alice/model", {"config.json": config, "model.safetensors": weights})
    server.stall = 3.0
    started = time.monotonic()
    message = hub_error(pull, "alice/model", endpoint=server.url, timeout=0.3)
    assert time.monotonic() - started < 2.5
    assert f"{server.url} did not answer within 0.3 s and alice/model is not in the local cache" in message
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    monkeypatch.setenv("NCA_HUB_TIMEOUT", "0.3")  # the CLI's wait, for a slow link or a quick test
    assert main(["pull", "alice/model"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("nca: error:") and "did not answer within 0.3 s" in err and "\n" not in err
    server.stall = 0.0


@pytest.mark.parametrize("answer", [b"<html><body>Welcome to our captive portal</body></html>", b"{}"])
def test_a_hub_answering_200_with_something_that_is_not_a_model_listing(server, monkeypatch, capsys, answer):
    config, weights = weights_bytes()
    server.seed("alice/model", {"config.json": config, "model.safetensors": weights})
    server.garbage = answer
    message = hub_error(pull, "alice/model", endpoint=server.url)
    assert f"{server.url} did not answer like a Hub for alice/model" in message and "HF_ENDPOINT" in message
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    assert main(["pull", "alice/model"]) == 2
    err = capsys.readouterr().err.strip()
    assert "did not answer like a Hub" in err and "\n" not in err


@pytest.mark.parametrize("revision", ["", "..", "../main", "main/", "-x", "a b", "a\nb", ".hidden", "v1.lock"])
def test_invalid_revisions_are_refused_before_any_request(server, revision):
    message = hub_error(pull, "alice/model", revision=revision, endpoint=server.url)
    assert f"{revision!r} is not a revision" in message and "--revision" in message
    assert server.requests == []


def test_valid_revisions_pass_the_check():
    for revision in ("main", "v1.0", "refs/pr/1", "0123456789abcdef0123456789abcdef01234567", "feature_x"):
        assert nca_hub.check_revision(revision) == revision


def test_cli_pull_refuses_an_empty_revision_and_an_output_that_is_a_file(server, tmp_path, monkeypatch, capsys):
    config, weights = weights_bytes()
    server.seed("alice/model", {"config.json": config, "model.safetensors": weights})
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    assert main(["pull", "alice/model", "--revision", ""]) == 2
    assert capsys.readouterr().err.strip() == "nca: error: '' is not a revision: pass an existing branch, tag or commit as --revision"
    existing = tmp_path / "passwd"
    existing.write_text("root:x:0:0\n")
    assert main(["pull", "alice/model", "-o", str(existing)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"nca: error: {existing} is a file, not a folder: choose a new or empty folder as -o"
    assert existing.read_text() == "root:x:0:0\n"  # untouched
    assert main(["pull", "alice/model", "-o", str(existing / "sub")]) == 2
    assert f"{existing} is a file, not a folder, so {existing / 'sub'} cannot be made" in capsys.readouterr().err
    assert not [r for r in server.requests if "/resolve/" in r]


@pytest.mark.parametrize("status", [403, 500])
def test_a_failed_file_download_reports_the_real_status_fast(server, status):
    config, weights = weights_bytes()
    server.seed("alice/model", {"config.json": config, "model.safetensors": weights})
    server.file_status = status
    started = time.monotonic()
    message = hub_error(pull, "alice/model", endpoint=server.url)
    assert time.monotonic() - started < 5
    assert f"answered {status}" in message or f"({status})" in message
    assert "not in the local cache" not in message and "cannot reach" not in message


def test_the_app_wording_names_the_studio_fields_not_cli_flags(server, tmp_path):
    push(model_folder(tmp_path / "m"), "alice/secret", private=True, token=TOKEN, endpoint=server.url)
    app = {"token": False, "endpoint": server.url, "wording": nca_hub.APP_WORDING}
    private = hub_error(pull, "alice/secret", **app)
    assert private.endswith("or it is private: sign in with Hugging Face, or paste a token into the Hub token box")
    revision = hub_error(pull, "alice/secret", revision="..", **app)
    assert revision == "'..' is not a revision: type an existing branch, tag or commit in Revision, or leave it empty for main"
    for message in (private, revision):
        assert "--" not in message and "HF_TOKEN" not in message and "HF_ENDPOINT" not in message


def test_token_false_never_uses_the_machines_token(server, tmp_path, monkeypatch):
    push(model_folder(tmp_path / "m"), "alice/secret", private=True, token=TOKEN, endpoint=server.url)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    assert "or it is private" in hub_error(pull, "alice/secret", endpoint=server.url, token=False)
    assert "token is missing (401)" in hub_error(push, tmp_path / "m", "alice/anon", token=False, endpoint=server.url)
    assert "alice/anon" not in server.repos
    assert (pull("alice/secret", endpoint=server.url) / "model.safetensors").exists()  # the CLI's None still means HF_TOKEN


def test_a_local_card_names_the_model_and_its_usage_line_grows_it(tmp_path, monkeypatch):
    from nca_gradio.workspace import zip_model

    archive = zip_model(model_folder(tmp_path / "m"), tmp_path / "my-pebbles.zip")
    with zipfile.ZipFile(archive) as zipped:
        card = zipped.read("my-pebbles/README.md").decode()  # the zip holds one folder, named like the zip
        unpacked = tmp_path / "unpacked" / "my-pebbles"
        zipped.extractall(unpacked.parent)
    assert "OWNER/NAME" not in card and "# NAME" not in card
    assert "\n# my-pebbles\n" in card
    command = re.search(r"`nca grow (\S+) -o texture.gif`", card).group(1)
    assert command == "./my-pebbles"
    monkeypatch.chdir(unpacked.parent)  # "from the folder that holds my-pebbles/", as the card says
    assert main(["grow", command, "-o", "texture.png", "--size", "16", "--steps", "2"]) == 0
    assert (unpacked.parent / "texture.png").exists()


def test_cards_link_only_to_files_beside_them_or_the_hub(pushed, shared_server):
    """No link to a repository that does not exist: the bundled cards and a pushed one link their own files, or the Hub."""
    repo_files = shared_server.files(pushed["repo"])
    cards = {"pushed": (repo_files["README.md"].decode(), set(repo_files))}
    for folder in sorted((ROOT / "models").iterdir()):
        if (folder / "README.md").exists():
            cards[folder.name] = ((folder / "README.md").read_text(), {p.name for p in folder.iterdir()})
    assert len(cards) == 1 + len(list((ROOT / "models").glob("*/config.json"))) >= 17  # every bundled model has its card
    for name, (card, files) in cards.items():
        for link in re.findall(r"\]\(([^)]+)\)", card):
            assert link.startswith("https://huggingface.co/") or link in files, (name, link)
        assert "github.com" not in card, name
