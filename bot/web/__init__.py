"""The patient's web diary: personal links, pages served by aiohttp.web (see server.py)."""
