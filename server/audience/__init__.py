"""The audience speaks back (PROTOCOL.md "Audience"): questions, comments and polls from viewers
of a room's broadcast, moderated, translated once per language and published as cacheable
per-language documents.

:mod:`.board` and :mod:`.polls` are the pure core (no I/O, no event loop: text checks, rates,
bans, grouping, votes, documents); :mod:`.service` is the async shell (the viewer socket, the
translation runner, the documents over HTTP, the export).
"""
