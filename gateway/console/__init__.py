"""The admin console served by the edge at /ui: its sessions, pages and static files."""
