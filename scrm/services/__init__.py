"""scrm's services, one topic per module: `matching` (keywords), `access` (permissions),
`optouts`, `tags`, `segments`, `welcome`, `autoreplies`, `sensitive`, `events` (what instance
events do here)."""
