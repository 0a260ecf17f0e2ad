"""PyTorch weight files written by torch.save itself, for test/torch-checkpoint.test.ts.

Usage: torch_checkpoints.py MODEL_DIR OUT_DIR

MODEL_DIR holds a model saved by simcsepp (config.json, model.safetensors, vocab.txt). Each folder written under
OUT_DIR is that model with its weights as pytorch_model.bin (or shards of it) in one of the ways PyTorch files come:
  zip         torch.save's format since PyTorch 1.6 (and a bytes value beside the tensors)
  legacy      the format before it (_use_new_zipfile_serialization=False)
  views       every tensor a view into one shared storage, at its own offset, the 2-D ones transposed views of a
              transposed copy (strides not row-major): what a state dict of tied or sliced parameters holds
  legacy-views the same in the legacy format
  sharded     two shards named by pytorch_model.bin.index.json, as save_pretrained(safe_serialization=False) splits
  f16, bf16   the weights in half precision (zip), beside f16-st and bf16-st: the same weights as model.safetensors
  dense       a sentence-transformers Dense module (config.json, pytorch_model.bin), beside dense-st (model.safetensors)
Prints the folder names, one per line.
"""

import json
import os
import shutil
import sys

import torch
from safetensors.torch import load_file, save_file


def folder(out, name, model_dir):
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    for f in ("config.json", "vocab.txt"):
        shutil.copy(os.path.join(model_dir, f), d)
    return d


def views_of(sd):
    """Each tensor a view into one flat storage; 2-D ones transposed views of their transposed copy."""
    total = sum(t.numel() for t in sd.values())
    flat = torch.empty(total + 7, dtype=torch.float32)
    out, at = {}, 7  # (a nonzero first offset)
    for name, t in sd.items():
        n = t.numel()
        if t.dim() == 2:
            rows, cols = t.shape
            flat[at : at + n].copy_(t.t().contiguous().reshape(-1))
            out[name] = flat[at : at + n].view(cols, rows).t()  # stride (1, rows)
        else:
            flat[at : at + n].copy_(t.reshape(-1))
            out[name] = flat[at : at + n].view(t.shape)
        at += n
    for name, t in sd.items():
        assert torch.equal(out[name], t), name
    return out


def main():
    model_dir, out = sys.argv[1], sys.argv[2]
    sd = load_file(os.path.join(model_dir, "model.safetensors"))
    written = []

    # (with a bytes value beside the tensors: protocol 2 pickles it as _codecs.encode(text, 'latin1'), which is read
    # and left out, as every value that is not a tensor)
    torch.save({**sd, "note": b"\xe9t\xe9"}, os.path.join(folder(out, "zip", model_dir), "pytorch_model.bin"))
    written.append("zip")
    torch.save(sd, os.path.join(folder(out, "legacy", model_dir), "pytorch_model.bin"), _use_new_zipfile_serialization=False)
    written.append("legacy")
    views = views_of(sd)
    torch.save(views, os.path.join(folder(out, "views", model_dir), "pytorch_model.bin"))
    written.append("views")
    torch.save(views, os.path.join(folder(out, "legacy-views", model_dir), "pytorch_model.bin"), _use_new_zipfile_serialization=False)
    written.append("legacy-views")

    d = folder(out, "sharded", model_dir)
    names = list(sd)
    half = len(names) // 2
    shards = {"pytorch_model-00001-of-00002.bin": names[:half], "pytorch_model-00002-of-00002.bin": names[half:]}
    weight_map = {}
    for file, part in shards.items():
        torch.save({n: sd[n] for n in part}, os.path.join(d, file))
        weight_map.update({n: file for n in part})
    with open(os.path.join(d, "pytorch_model.bin.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": sum(t.numel() * 4 for t in sd.values())}, "weight_map": weight_map}, f)
    written.append("sharded")

    for name, dtype in (("f16", torch.float16), ("bf16", torch.bfloat16)):
        low = {n: t.to(dtype) for n, t in sd.items()}
        torch.save(low, os.path.join(folder(out, name, model_dir), "pytorch_model.bin"))
        save_file(low, os.path.join(folder(out, f"{name}-st", model_dir), "model.safetensors"), metadata={"format": "pt"})
        written.append(name)

    torch.manual_seed(0)
    dense = {"linear.weight": torch.randn(5, 8), "linear.bias": torch.randn(5)}
    config = {"in_features": 8, "out_features": 5, "bias": True, "activation_function": "torch.nn.modules.activation.Tanh"}
    for name in ("dense", "dense-st"):
        d = os.path.join(out, name)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(config, f)
    torch.save(dense, os.path.join(out, "dense", "pytorch_model.bin"))
    save_file(dense, os.path.join(out, "dense-st", "model.safetensors"), metadata={"format": "pt"})
    written.append("dense")

    print("\n".join(written))


if __name__ == "__main__":
    main()
