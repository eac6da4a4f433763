"""The web app: `minillm serve` starts a local server with one page to chat with a run's models.

cli.py (the flags) -> server.py (HTTP, the JSON API's documentation) -> api.py (each
endpoint) -> events.py (a generation as events) and models.py (the run's checkpoints);
static/ holds the page (index.html, app.js, style.css), shipped as package data. Standard
library only: http.server, json, threading.
"""
