"""Sound: PCM, programmes (chimes, loudness, limiter, resampling), outputs and the relays that switch them."""
