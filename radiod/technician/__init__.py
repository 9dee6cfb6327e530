"""The technician's side of a node: what ``radiod health``, ``radiod status`` and ``radiod test`` run.

They ask the running daemon over its control socket (:mod:`radiod.node.control` is the server) and print what
it answers; ``radiod health`` also runs the checks that need no daemon, so it says something useful, and exits
2, when the daemon is dead. Nothing here runs inside the daemon.
"""
