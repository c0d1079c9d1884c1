"""Outputs ranked against listeners' GEMS shares (Emotify): the declared pairs, counts, markdown."""

from __future__ import annotations

import numpy as np
import pandas as pd

from lightning_module.evaluation.ratings import rating_lines, rating_scores

GEMS = ["power", "joyful_activation", "calmness", "tenderness", "sadness"]


def test_energy_and_mood_are_ranked_against_their_declared_ratings() -> None:
    rng = np.random.default_rng(0)
    n = 40
    rows = pd.DataFrame({f"gems_{g}": rng.uniform(0, 1, n) for g in GEMS})
    rows.loc[0, "gems_power"] = np.nan  # an unrated clip is left out
    vitality = (rows["gems_power"] + rows["gems_joyful_activation"]) / 2
    sublimity = (rows["gems_calmness"] + rows["gems_tenderness"]) / 2
    energy = (vitality - sublimity).fillna(0).to_numpy()
    features = np.stack([energy, -rows["gems_sadness"].to_numpy()], axis=1)
    sad = rows["gems_sadness"].to_numpy()[:, None]
    outputs = {
        "feature": (["energy", "tempo"], features),
        "mood": (["sad", "happy"], np.concatenate([sad, 1 - sad], axis=1)),
    }
    mask = np.arange(n) < 30
    scores = rating_scores(rows, mask, outputs)
    energy_pair = scores["feature energy vs power + joyful_activation - calmness - tenderness"]
    assert energy_pair["n"] == 29 and energy_pair["spearman"] > 0.99
    assert scores["mood sad vs sadness"]["spearman"] > 0.99
    assert scores["mood happy vs joyful_activation"]["n"] == 30
    assert not any(k.startswith("feature valence") for k in scores)  # the model has no valence
    assert "| mood sad vs sadness | 30 | 1.000 |" in "\n".join(rating_lines(scores))
    assert rating_scores(rows.drop(columns=["gems_sadness"]), mask, outputs).keys() == {
        "feature energy vs power + joyful_activation - calmness - tenderness",
        "mood happy vs joyful_activation",
    }
