"""Audio in and out: microphone and speaker (PyAudio), WAV files, the simulated talker."""
