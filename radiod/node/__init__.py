"""The node daemon: message, store, schedule, playout, report."""
