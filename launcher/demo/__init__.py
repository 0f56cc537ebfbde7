"""``launcher demo``: the portal as a newcomer first meets it, never for production.

- ``command.py``: the demo command: settings under ``var/``, the portal with the development
  provider mounted at ``/_devidp``, first-start history, loopback only.
- ``devidp.py``: the development OpenID Provider, a real one over HTTP so that the portal's
  OIDC client is exercised on the wire; with ``authorization.py`` (the authorization request),
  ``oauth.py`` (parameters, client credentials, PKCE, error answers), ``pages.py`` (the
  "Sign in as…" picker), ``keys.py`` (its signing key file) and ``users.py`` (the demo users).
- ``data.py``: realistic launch history, for the demo's charts and the report benchmark.
"""
