"""Live interpretation: voice activity detection, streaming recognition, translation, captions.

Imports nothing else of Parley. ``media`` hands it :class:`interpret.frames.AudioChunk`s; the
server reads :class:`interpret.frames.CaptionFrame`s back.
"""
