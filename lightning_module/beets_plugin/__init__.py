"""What the beets plugin does (``beetsplug/audiotagger.py`` is only its beets glue)."""
