"""Live interpretation: voice activity detection, streaming recognition, translation, captions.

Imports nothing else of Parley. ``media`` hands it :class:`interpret.frames.AudioChunk`s; the
server reads :class:`interpret.frames.CaptionFrame`s back. ``media`` may import the leaves
:mod:`interpret.frames`, :mod:`interpret.framing` and :mod:`interpret.processes`, and nothing
else of it (tests/unit/test_dependency_rule.py).
"""
