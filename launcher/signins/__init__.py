"""Imported sign-ins: the identity provider's sign-in logs, the denominator of the front door.

The story, one module each: :mod:`reader` streams a file (JSON array, a Graph ``{"value": […]}``
page, JSON lines, gzipped or not) one record at a time; :mod:`entra`, :mod:`keycloak` and
:mod:`okta` turn a provider's record into a :class:`~launcher.signins.record.Record`;
:mod:`chunks` checks, pseudonymises and maps them into rows to store, in the process of their
own that :mod:`reading` starts; :mod:`importer` stores them (:mod:`stage`), one transaction
per file; :mod:`join` decides which sign-ins came through the portal (a launch of that app by
the same person just before) and keeps the gateway rollups, from whichever side arrives
second.
"""
