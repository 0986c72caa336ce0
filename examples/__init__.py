"""Example apps for bin/pyweb (run from the repository root: bin/pyweb examples.hello:app)."""
