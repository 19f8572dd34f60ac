"""Media plane: aiortc peer connections and encoded-frame forwarding (an SFU).

Imports nothing of the rest of Parley except the frame types it hands to ``interpret``.
"""
