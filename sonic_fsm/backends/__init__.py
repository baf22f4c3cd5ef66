"""Backends open sessions; every session speaks the Nova Sonic event protocol."""
