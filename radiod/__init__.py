"""radiod: the edge daemon of a Vietnamese commune loudspeaker cluster.

It receives signed bulletins over MQTT, synthesizes Vietnamese speech locally, renders the programme,
switches the amplifier and speaker-line relays, and reports every play back to the commune hub.
"""

__version__ = "0.1.0"
