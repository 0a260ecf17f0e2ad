"""sentence-transformers' own CoSENTLoss and AnglELoss on given embeddings, in float64 with PyTorch's autograd:
test/cosent.test.ts compares losses.cosent (similarity cosine and angle) with them, loss and gradients.

Usage: python3 st_losses.py IN_JSON OUT_JSON
IN_JSON: [{"n", "d", "z1": [n*d], "z2": [n*d], "scores": [n]}, ...]; OUT_JSON: per case
{"cosent": {"loss", "g1", "g2"}, "angle": {...}} (scale 20, their default).
"""

import json
import sys

import torch

try:
    from sentence_transformers.sentence_transformer import losses
except ImportError:  # before sentence-transformers 6
    from sentence_transformers import losses


def run(loss, case):
    n, d = case["n"], case["d"]
    z1 = torch.tensor(case["z1"], dtype=torch.float64).reshape(n, d).requires_grad_()
    z2 = torch.tensor(case["z2"], dtype=torch.float64).reshape(n, d).requires_grad_()
    labels = torch.tensor(case["scores"], dtype=torch.float64)
    value = loss.compute_loss_from_embeddings([z1, z2], labels)
    value.backward()
    return {"loss": value.item(), "g1": z1.grad.flatten().tolist(), "g2": z2.grad.flatten().tolist()}


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        cases = json.load(f)
    cosent, angle = losses.CoSENTLoss(None), losses.AnglELoss(None)
    out = [{"cosent": run(cosent, c), "angle": run(angle, c)} for c in cases]
    with open(sys.argv[2], "w", encoding="utf-8") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()
