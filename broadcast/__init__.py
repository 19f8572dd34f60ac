"""The broadcast worker: one process per broadcast room that joins it over Parley's own
WebSocket + WebRTC as a hidden ``broadcaster``, builds one program (the active speaker's video,
the floor's audio and one audio rendition per interpretation channel) and packages it as HLS
with a WebVTT caption track per language. It speaks the wire protocol only and imports nothing
else of the project (like a browser would)."""
