"""The Dutch for the announcement, settings, unsubscribe and display pages, the digest, and
the "missing an app?" loop (the admin page's requests and the grid's notice).

Kept beside the pages it belongs to; :func:`translator` falls back to launcher/i18n.py for the
portal's common words (the header, errors), so a page rendered with it needs nothing else.
"""

from __future__ import annotations

from collections.abc import Callable

from launcher import i18n

_NL: dict[str, str] = {
    "Announcements": "Mededelingen",
    "Hide": "Verbergen",
    "Hide this announcement": "Deze mededeling verbergen",
    "Read more": "Lees meer",
    "New announcement": "Nieuwe mededeling",
    "Title": "Titel",
    "Text": "Tekst",
    "Link (optional, https)": "Link (optioneel, https)",
    "From": "Van",
    "Until": "Tot en met",
    "Groups (comma-separated; empty = everyone)": "Groepen (met komma's; leeg = iedereen)",
    "Language": "Taal",
    "both": "beide",
    "Publish": "Publiceren",
    "Delete": "Verwijderen",
    "Audience": "Publiek",
    "Window": "Periode",
    "Reach": "Bereik",
    "Status": "Status",
    "current": "actueel",
    "upcoming": "gepland",
    "ended": "afgelopen",
    "fewer than %d": "minder dan %d",
    "No announcements yet.": "Nog geen mededelingen.",
    "The announcement is published.": "De mededeling is gepubliceerd.",
    "The announcement is deleted.": "De mededeling is verwijderd.",
    "The announcements cannot be read right now: the database does not answer.": (
        "De mededelingen zijn nu niet te lezen: de database antwoordt niet."
    ),
    "Reach counts the people who were shown an announcement on their grid.": (
        "Het bereik telt de mensen die een mededeling op hun startpagina kregen."
    ),
    "Settings": "Instellingen",
    "Weekly digest": "Wekelijks overzicht",
    "Once a week, an e-mail with the announcements and new apps for you.": (
        "Eens per week een e-mail met de mededelingen en nieuwe apps voor jou."
    ),
    "Send me the weekly digest": "Stuur mij het wekelijkse overzicht",
    "No digest": "Geen overzicht",
    "Save": "Opslaan",
    "Saved.": "Opgeslagen.",
    "It goes to": "Het gaat naar",
    "Your e-mail address is kept only while you receive the digest.": (
        "Je e-mailadres wordt alleen bewaard zolang je het overzicht ontvangt."
    ),
    "Your account has no e-mail address, so the digest cannot be sent to you.": (
        "Je account heeft geen e-mailadres; het overzicht kan je niet worden gestuurd."
    ),
    "Unsubscribe from the weekly digest": "Afmelden voor het wekelijkse overzicht",
    "Unsubscribe": "Afmelden",
    "You are unsubscribed. Your e-mail address has been removed.": (
        "Je bent afgemeld. Je e-mailadres is verwijderd."
    ),
    "Most used apps this week": "Meest gebruikte apps deze week",
    "launches": "keer geopend",
    "New apps": "Nieuwe apps",
    "Open the portal": "Open het portaal",
    "Your week in the portal": "Jouw week in het portaal",
    "You get this e-mail because you asked for the weekly digest.": (
        "Je krijgt deze e-mail omdat je het wekelijkse overzicht hebt aangevraagd."
    ),
    # "missing an app?" closes the loop
    "You asked for it, and it is here now": "Je vroeg erom, en nu is het er",
    "You asked for this app; it is in the portal now:": (
        "Je vroeg om deze app; hij staat nu in het portaal:"
    ),
    "You asked for these apps; they are in the portal now:": (
        "Je vroeg om deze apps; ze staan nu in het portaal:"
    ),
    "OK, thanks": "OK, bedankt",
    "Added to the portal as": "Toegevoegd aan het portaal als",
    "choose the app": "kies de app",
    "Mark as added": "Markeren als toegevoegd",
    "Marked as added. The people who asked will see it on their grid.": (
        "Gemarkeerd als toegevoegd. Wie erom vroeg, ziet het op de startpagina."
    ),
    "Dismissed. The request is in the history below.": (
        "Afgehandeld. Het verzoek staat hieronder in de geschiedenis."
    ),
    "No open requests.": "Geen openstaande verzoeken.",
    "Closed requests": "Afgehandelde verzoeken",
    "Outcome": "Uitkomst",
    "By": "Door",
    "When": "Wanneer",
    "added as": "toegevoegd als",
    "dismissed": "afgewezen",
    "you": "jij",
    "pseudonymous id, as in the audit log": "gepseudonimiseerde id, zoals in het auditlog",
}


def translator(lang: str) -> Callable[[str], str]:
    """``t(text)`` for the pages of launcher/engage, falling back to the portal's words."""
    common = i18n.translator(lang)
    if lang == "nl":
        return lambda text: _NL.get(text) or common(text)
    return common
