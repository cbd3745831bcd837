"""`npcrt demo`: the offline village demo (server in-process, headless village, live table, summary, plot)."""
