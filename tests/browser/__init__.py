"""End-to-end tests of ``gankit serve`` in a real headless Chromium (Debian's, driven by
Playwright): see conftest.py for how the browser and the server are started."""
