"""What the tests share, and bench/ may import: the server as its own process (server), in this
process (app), network namespaces (netns), clients speaking the real protocol (client, raw),
waits (waits, clock), paths of the repository and the evaluation set (paths). Fixtures stay in the
conftest.py files; test modules import only from here."""
