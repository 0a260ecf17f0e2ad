"""Loads model folders with sentence-transformers (as Python users load ours) and prints each one's vectors of the
given sentences as JSON, one line per folder: test/transformers-parity.test.ts holds what simcsepp writes to what
sentence-transformers reads. With --onnx-check FILE..., instead checks each .onnx file with onnx.checker
(full_check) and prints a line per file: "ok FILE", or "FAIL FILE: what the checker said". One process for all
(importing torch and sentence-transformers takes seconds).

Usage: python3 st_encode.py SENTENCES_JSON_FILE DIR... | python3 st_encode.py --onnx-check FILE...
"""

import json
import sys


def main(args):
    if args[0] == "--onnx-check":
        import onnx

        for path in args[1:]:
            try:
                onnx.checker.check_model(onnx.load(path), full_check=True)
                print(f"ok {path}")
            except Exception as e:  # noqa: BLE001 (reported per file, the next ones still checked)
                print(f"FAIL {path}: {str(e).splitlines()[0] if str(e) else type(e).__name__}")
        return
    from sentence_transformers import SentenceTransformer

    with open(args[0]) as f:
        sentences = json.load(f)
    for folder in args[1:]:
        model = SentenceTransformer(folder, device="cpu")
        print(json.dumps(model.encode(sentences, convert_to_numpy=True).tolist()))


if __name__ == "__main__":
    main(sys.argv[1:])
