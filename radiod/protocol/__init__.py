"""The wire protocol v1 (docs/protocol.md): topics, messages both ways, signatures and schedules.

Hub and node import the same definitions, so a field is spelled in one place.
"""
