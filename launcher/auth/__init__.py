"""Sign-in: the OIDC client (the only Authlib user), sessions, CSRF and the demo provider."""
