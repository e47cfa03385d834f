"""Who spoke when: a speaker encoder, diarization by clustering, and enrolled (known) voices.

Only :mod:`app.speakers.encoder` imports torch, and only when a task asks for diarization.
"""
