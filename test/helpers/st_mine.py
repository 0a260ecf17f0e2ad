"""Mines hard negatives with sentence-transformers' mine_hard_negatives (its "triplet" output, 'top' sampling) and
prints the triplets as JSON, one line per set of options: test/transformers-parity.test.ts holds lib/data/mine.ts to
it. The model is loaded once for all the sets.

Usage: python3 st_mine.py MODEL_DIR INPUT_JSON   (INPUT_JSON: {"pairs": [[anchor, positive], ...], "corpus": [...]
or null, "runs": [{mine_hard_negatives' keyword arguments}, ...]})
"""

import contextlib
import json
import sys


def main(model_dir, input_file):
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.util import mine_hard_negatives

    with open(input_file) as f:
        spec = json.load(f)
    model = SentenceTransformer(model_dir, device="cpu")
    data = Dataset.from_dict({"anchor": [a for a, _ in spec["pairs"]], "positive": [p for _, p in spec["pairs"]]})
    for options in spec["runs"]:
        with contextlib.redirect_stdout(sys.stderr):  # its notes (an anchor with several positives, ...) are not the JSON
            mined = mine_hard_negatives(
                data, model, corpus=spec["corpus"], output_format="triplet", sampling_strategy="top", verbose=False, **options
            )
        print(json.dumps([[row["anchor"], row["positive"], row["negative"]] for row in mined]))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
