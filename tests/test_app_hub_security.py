"""The studio's Hub tab as a public Space meets it: the server has its owner's HF_TOKEN, visitors do not.

The app runs on loopback with HF_TOKEN set in its environment and talks to a loopback Hub
that holds a private repo of that token's owner. Every visitor is a gradio_client session.
A visitor acts only with their own typed token (or OAuth sign-in): never with the server's,
and never through a private model another session pulled into a shared cache.
"""

from __future__ import annotations

import pytest
from conftest import running_demo
from gradio_client import Client
from gradio_client.exceptions import AppError
from hub_server import LoopbackHub
from huggingface_hub import constants

TOKEN = "hf_SpaceOwnerSecret0123456789abcd"
GENERIC = "The upstream Gradio app has raised an exception"


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """The owner's Hub with a private model, and the app's environment as on a Space whose owner set HF_TOKEN."""
    from helpers import model_folder

    home = tmp_path_factory.mktemp("hf_home")
    with pytest.MonkeyPatch.context() as env, LoopbackHub(token=TOKEN) as server:
        env.setenv("HF_TOKEN", TOKEN)
        env.setenv("HF_HOME", str(home))  # one cache for the whole server, as huggingface_hub would use
        env.delenv("HF_HUB_CACHE", raising=False)
        env.setattr(constants, "HF_TOKEN_PATH", str(home / "token"))
        env.setattr(constants, "HF_STORED_TOKENS_PATH", str(home / "stored_tokens"))
        env.setenv("HF_ENDPOINT", server.url)
        env.setenv("NCA_HUB_TIMEOUT", "5")
        from nca_gradio.hub import push

        push(model_folder(home / "owner-model"), "owner/private", private=True, token=TOKEN, endpoint=server.url, log=lambda m: None)
        yield server
    assert not server.unknown


@pytest.fixture(scope="module")
def app_url(hub):
    with running_demo() as url:
        yield url


@pytest.fixture(autouse=True)
def healthy(hub):
    hub.down, hub.garbage = False, None
    yield
    hub.down, hub.garbage = False, None


def visitor(url: str) -> Client:
    return Client(url, verbose=False, download_files=True)


def refusal(call, *args, **kwargs) -> str:
    """The page's error message for a call, checked to be a clear one: no generic text, no token, no CLI flag."""
    with pytest.raises(AppError) as caught:
        call(*args, **kwargs)
    message = str(caught.value)
    assert GENERIC not in message and TOKEN not in message and "--" not in message, message
    return message


def own_models(session: Client) -> list[str]:
    grow_list, _, _ = session.predict(None, None, None, api_name="/models")
    return [value for _, value in grow_list["choices"] if not value.endswith("(bundled)")]


@pytest.mark.slow
def test_an_anonymous_visitor_cannot_pull_a_private_repo_with_the_servers_token(app_url, hub):
    message = refusal(visitor(app_url).predict, "owner/private", "", "", api_name="/pull")
    assert "owner/private was not found" in message and "or it is private" in message
    assert "Hub token box" in message  # the app's field, not a CLI flag or HF_TOKEN
    assert "HF_TOKEN" not in message


def test_an_anonymous_visitor_cannot_push_with_the_servers_token(app_url, hub):
    before = len(hub.requests)
    message = refusal(visitor(app_url).predict, "pebbles (bundled)", "owner/anon-pushed", False, "", api_name="/push")
    assert "Hub token box" in message and "to share a model" in message
    assert "owner/anon-pushed" not in hub.repos
    assert hub.requests[before:] == []  # refused before asking the Hub anything


@pytest.mark.parametrize("status", [500, 503])
@pytest.mark.slow
def test_a_private_model_pulled_by_one_session_never_serves_another(app_url, hub, status):
    alice, bob = visitor(app_url), visitor(app_url)
    *_, note = alice.predict("owner/private", "", TOKEN, api_name="/pull")
    assert "owner/private (Hub)" in note and own_models(alice) == ["owner/private (Hub)"]
    assert "or it is private" in refusal(bob.predict, "owner/private", "", "", api_name="/pull")

    hub.down, hub.down_status = True, status  # the Hub has a bad day: a cached copy is all a pull can get
    message = refusal(bob.predict, "owner/private", "", "", api_name="/pull")
    assert f"answered {status}" in message and "not in the local cache" in message
    assert own_models(bob) == []
    refused = str(pytest.raises(AppError, bob.predict, "owner/private (Hub)", 64, 10, 10, 0, api_name="/grow").value)
    assert "Model must be one of" in refused and "got 'owner/private (Hub)'" in refused
    alice.predict("owner/private", "", TOKEN, api_name="/pull")  # the session that pulled it keeps its own copy
    assert own_models(alice) == ["owner/private (Hub)"]


def test_a_hub_answering_200_with_html_and_bad_revisions_get_clear_messages(app_url, hub):
    session = visitor(app_url)
    hub.garbage = b"<html><body>Welcome to our captive portal</body></html>"
    message = refusal(session.predict, "owner/private", "", TOKEN, api_name="/pull")
    assert "did not answer like a Hub for owner/private" in message and "try again" in message
    hub.garbage = None
    for revision in ("..", "a b", "-x"):
        message = refusal(session.predict, "owner/private", revision, TOKEN, api_name="/pull")
        assert f"{revision!r} is not a revision" in message and "Revision" in message
    assert "has no revision 'v9'" in refusal(session.predict, "owner/private", "v9", TOKEN, api_name="/pull")
