"""Media plane: aiortc peer connections and encoded-frame forwarding (an SFU).

Imports nothing of the rest of Parley except ``interpret``'s leaf modules: the frame types it
hands over (:mod:`interpret.frames`), and the frame codec and worker-process plumbing it shares
with the speech worker (:mod:`interpret.framing`, :mod:`interpret.processes`).
"""
