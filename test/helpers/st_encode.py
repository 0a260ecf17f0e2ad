"""Loads a model folder with sentence-transformers (as Python users load ours) and prints its vectors of the given
sentences as JSON: test/transformers-parity.test.ts holds what simcsepp writes to what sentence-transformers reads.
With --onnx-check FILE..., instead checks each .onnx file with onnx.checker (full_check) and prints "ok".

Usage: python3 st_encode.py DIR SENTENCES_JSON_FILE | python3 st_encode.py --onnx-check FILE...
"""

import json
import sys


def main(args):
    if args[0] == "--onnx-check":
        import onnx

        for path in args[1:]:
            onnx.checker.check_model(onnx.load(path), full_check=True)
        print("ok")
        return
    from sentence_transformers import SentenceTransformer

    with open(args[1]) as f:
        sentences = json.load(f)
    model = SentenceTransformer(args[0], device="cpu")
    print(json.dumps(model.encode(sentences, convert_to_numpy=True).tolist()))


if __name__ == "__main__":
    main(sys.argv[1:])
