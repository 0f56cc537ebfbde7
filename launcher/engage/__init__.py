"""Reasons to come back: announcements on the grid, hallway screens and a weekly digest.

announcements.py  what editors write, who sees it (audience, window, language), its reach
subscriptions.py  the digest's opt-in, opt-out and signed unsubscribe tokens
digest.py         composing and sending the weekly mail (``launcher send-digest``)
mail.py           the one SMTP connection of a digest run
displays.py       hallway screens: which display a token opens, and what it shows
"""
