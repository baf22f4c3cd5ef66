"""The voice server: an ASGI app (Starlette on uvicorn) and its browser page."""
