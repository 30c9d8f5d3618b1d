"""Session-wide settings of the test suite."""

import os
import shutil
import tempfile

# the parse cache (ftrace_fast.cache) of every test, and of the CLI processes the tests start,
# goes to a directory of this session, never to the user's ~/.cache
_CACHE_DIR = tempfile.mkdtemp(prefix="ftfast-test-cache-")
os.environ["FTFAST_CACHE_DIR"] = _CACHE_DIR


def pytest_unconfigure(config):
    shutil.rmtree(_CACHE_DIR, ignore_errors=True)
