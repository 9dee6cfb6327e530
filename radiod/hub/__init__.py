"""The commune hub's side: operator tools, the broker's setup, the commune's nodes."""
