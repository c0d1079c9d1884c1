"""The audio features the regression head learns: names, valid ranges and units (pandas-free)."""

#: Spotify-style audio features, in the order the regression head predicts them.
FEATURES: tuple[str, ...] = (
    "danceability",
    "energy",
    "valence",
    "acousticness",
    "instrumentalness",
    "speechiness",
    "liveness",
    "tempo",
    "loudness",
)

#: Valid range of each feature in natural units (tempo in BPM, loudness in dB LUFS-like dBFS).
FEATURE_RANGES: dict[str, tuple[float, float]] = {
    **{name: (0.0, 1.0) for name in FEATURES[:7]},
    "tempo": (0.0, 300.0),
    "loudness": (-70.0, 6.0),
}

FEATURE_UNITS: dict[str, str] = {
    **{name: "" for name in FEATURES[:7]},
    "tempo": "BPM",
    "loudness": "dB",
}
