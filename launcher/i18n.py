"""Interface text in Dutch and English. English strings are the message ids."""

from __future__ import annotations

from collections.abc import Callable

LANGUAGES = ("nl", "en")

_NL: dict[str, str] = {
    "Sign in": "Inloggen",
    "Sign out": "Uitloggen",
    "Sign in again": "Opnieuw inloggen",
    "You are signed out.": "Je bent uitgelogd.",
    "Signed in as": "Ingelogd als",
    "Search apps": "Zoek apps",
    "Type to filter the apps": "Typ om de apps te filteren",
    "No apps match your search.": "Geen apps gevonden.",
    "new": "nieuw",
    "Other": "Overig",
    "opens in a new tab": "opent in een nieuw tabblad",
    "You have no apps yet. Ask the service desk if you miss one.": (
        "Je hebt nog geen apps. Vraag de servicedesk als je er een mist."
    ),
    "Reports": "Rapportages",
    "Admin": "Beheer",
    "Back to your apps": "Terug naar je apps",
    "Sign-in failed": "Inloggen mislukt",
    "Sign-in required": "Inloggen vereist",
    "Not allowed": "Geen toegang",
    "Not found": "Niet gevonden",
    "Request refused": "Verzoek geweigerd",
    "Bad request": "Ongeldig verzoek",
    "Something went wrong": "Er ging iets mis",
    "The sign-in service is not answering": "De inlogdienst reageert niet",
    "Configuration error": "Configuratiefout",
    "Invalid app registry": "Ongeldig app-register",
    "Error code": "Foutcode",
    "App registry": "App-register",
    "Loaded from": "Geladen uit",
    "The registry on disk has errors; the portal keeps using the last valid version.": (
        "Het register op schijf bevat fouten; het portaal gebruikt de laatste geldige versie."
    ),
    "The registry is valid.": "Het register is geldig.",
    "Visible to": "Zichtbaar voor",
    "everyone": "iedereen",
    "hidden": "verborgen",
    "Skip to apps": "Naar de apps",
    "Favourites": "Favorieten",
    "Favourite": "Favoriet",
    "Recently used": "Recent gebruikt",
    "Missing an app?": "Mis je een app?",
    "Which app do you miss?": "Welke app mis je?",
    "Ask for it": "Vraag erom",
    "Thank you. The portal's administrators will see your request.": (
        "Dank je. De beheerders van het portaal zien je verzoek."
    ),
    "Requests for missing apps": "Verzoeken om ontbrekende apps",
    "The requests cannot be read right now: the database does not answer.": (
        "De verzoeken zijn nu niet te lezen: de database antwoordt niet."
    ),
    "App": "App",
    "People": "Mensen",
    "Departments": "Afdelingen",
    "Last asked": "Laatst gevraagd",
    "Dismiss": "Afhandelen",
    "No requests.": "Geen verzoeken.",
    "Too many requests": "Te veel verzoeken",
    "Announcements": "Mededelingen",
    "Settings": "Instellingen",
    "Move up": "Naar voren",
    "Move down": "Naar achteren",
    "Start typing anywhere to search; arrow keys move between the apps, Enter opens one, "
    "Escape clears, 1 to 9 open your favourites.": (
        "Begin ergens te typen om te zoeken; met de pijltjestoetsen ga je langs de apps, Enter "
        "opent er een, Escape wist, 1 tot 9 openen je favorieten."
    ),
}


def negotiate(accept_language: str | None, default: str) -> str:
    """The first of nl/en that the browser asks for, by quality; else the portal default."""
    if not accept_language:
        return default
    choices: list[tuple[float, int, str]] = []
    for index, part in enumerate(accept_language.split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        primary = tag.strip().lower().split("-")[0]
        if primary in LANGUAGES and quality > 0:
            choices.append((-quality, index, primary))
    return min(choices)[2] if choices else default


def translator(lang: str) -> Callable[[str], str]:
    if lang == "nl":
        return lambda text: _NL.get(text, text)
    return lambda text: text
