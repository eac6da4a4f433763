"""Fixtures of the web app's tests: the tiny run (tests/web_run.py) and the server on a
loopback port."""
import threading

import pytest
from web_run import build_run, tokenizer

from minillm.web.api import App
from minillm.web.server import Server


@pytest.fixture(scope="session")
def tok():
    return tokenizer()


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory, tok):
    return build_run(tmp_path_factory.mktemp("run") / "tiny", tok)


@pytest.fixture(scope="module")
def server(run_dir):
    """The web app on a free loopback port, in a thread of this process (server.app is
    its state: models, limits, the log of generations)."""
    srv = Server(App.open(run_dir), "127.0.0.1", 0, quiet=True)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(timeout=5)
