"""Vietnamese text to speech: normalization, voices, engines and the sentence cache."""
