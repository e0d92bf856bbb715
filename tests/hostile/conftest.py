"""Each hostile-input test gets a temporary folder of its own as the system's.

`scratch_left()` looks for mlpace's scratch copies in the temporary folder; a shared /tmp
would also show those of any other mlpace process running at the same time (a second test
run, a developer's own summarize), and the test would blame the verb it just ran.
"""

import tempfile

import pytest


@pytest.fixture(autouse=True)
def _private_tempdir(tmp_path_factory, monkeypatch):
    private = tmp_path_factory.mktemp("system-tmp")
    monkeypatch.setenv("TMPDIR", str(private))
    monkeypatch.setattr(tempfile, "tempdir", str(private))
    yield
