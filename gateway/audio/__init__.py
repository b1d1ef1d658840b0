"""The audio routes: transcriptions and translations (multipart uploads, metered by the seconds
of audio in the file) and speech (the audio streamed back, metered by the input's characters)."""
