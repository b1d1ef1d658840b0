"""The admin API (LiteLLM-compatible): `/key/*`, `/user/*`, `/team/*`, run-time settings."""
