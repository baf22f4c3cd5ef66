"""A local emulator of Nova Sonic: the embedded default backend and a real endpoint."""
