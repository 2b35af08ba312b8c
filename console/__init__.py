"""Conversation review console for support leads (aiohttp, server-rendered HTML).

Reads the conversations the assistant stored through :mod:`tracking` and keeps
its own tables (leads, sessions, tags, notes, review status, NLU corrections)
in the same database. ``python -m console serve`` runs it; ``python -m console
create-lead EMAIL [--admin]`` adds a support lead (or an admin, who manages
leads: :mod:`console.admin`).
"""
