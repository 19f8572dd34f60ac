"""Several Parley nodes behind one Redis (issue 18): :mod:`.placement` is the pure core (which
node a room goes to, what the Redis scripts do), :mod:`.node` the thin asyncio shell that
heartbeats and claims rooms through Redis."""
