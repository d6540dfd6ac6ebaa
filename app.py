"""The Space's entry point: build the studio and launch it (everything else lives in nca_gradio.ui)."""

import os

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # no calls home from a Space or a laptop

try:  # on ZeroGPU `spaces` must be imported before anything touches CUDA; elsewhere it may be absent
    import spaces  # noqa: F401
except ImportError:
    pass

from nca_gradio.run import sigterm_stops_runs
from nca_gradio.ui import build_demo, launch_options


def server_address() -> tuple[str, int]:
    """0.0.0.0:7860 on a Space (SPACE_ID is set), 127.0.0.1 locally; GRADIO_SERVER_NAME/PORT win."""
    default_host = "0.0.0.0" if os.environ.get("SPACE_ID") else "127.0.0.1"
    host = os.environ.get("GRADIO_SERVER_NAME") or default_host
    port = int(os.environ.get("GRADIO_SERVER_PORT") or 7860)
    return host, port


demo = build_demo()

if __name__ == "__main__":
    host, port = server_address()
    sigterm_stops_runs()  # a Space sends SIGTERM before it restarts: running trainings save their models first
    demo.launch(server_name=host, server_port=port, **launch_options())
