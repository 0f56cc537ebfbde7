"""HTTP handlers: thin. They parse, call a domain function and render."""
