#!/usr/bin/env python3
"""One SimCSE++ training step in PyTorch, as a baseline for `simcsepp bench step` (scripts/gpu-check.mjs).

The step is written the way the SimCSE / SimCSE++ released code computes it with Hugging Face
transformers: BERT (random init, bert-base shape by default) with a Linear+Tanh head on [CLS]; the two
dropout views z1, z2 come from one forward pass of the batch stacked twice (as SimCSE does), z0 from a
second pass with dropout switched off (model.eval() around it) but with gradient; the loss is
off-dropout InfoNCE (positive cos(z1_i, z2_i)/tau, negatives cos(z0_i, z0_j)/tau, j != i) plus
0.1 x DCL (per-dimension batch norm of z1 and z2, InfoNCE over X1^T X2 / (N tau_d)); backward, gradient
clipping at 1, AdamW. Formulas: docs/method.md. Mode `compile` is torch.compile of the encoder module (its
forward, and through AOTAutograd its backward; a second graph for the dropout-off pass), as one compiles a
model for training; clipping and AdamW stay eager (compiling the whole step, optimizer included, took longer
than gpu-check's budget on an H200).

Usage: python3 scripts/bench/torch_step.py [--batch-sizes 64,512] [--seq-len 32] [--steps 10]
       [--modes eager,compile] [--precisions fp32,bf16] [--model base] [--device cuda|cpu] [--json FILE]
On CUDA a step's time is the median over 3 rounds of --steps steps queued back to back with one
synchronisation per round (as a training loop runs them). On the CPU (`--device cpu`, for `simcsepp bench
step --device cpu`): bf16 is CPU autocast (oneDNN, AMX where the CPU has it), times are the median step's
wall clock and its process CPU time, peak memory is the resident set's high-water mark.
Prints one JSON object per line (mode, precision, batch, steps/s, sentences/s, peak memory).
"""
import argparse
import json
import resource
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
from transformers import BertConfig, BertModel

SIZES = {  # layers, hidden, heads, intermediate (lib/model/config.ts)
    "tiny": (2, 128, 2, 512),
    "mini": (4, 256, 4, 1024),
    "small": (4, 512, 8, 2048),
    "base": (12, 768, 12, 3072),
}


class Encoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.bert = BertModel(cfg, add_pooling_layer=False)
        self.mlp = nn.Sequential(nn.Linear(cfg.hidden_size, cfg.hidden_size), nn.Tanh())

    def forward(self, ids, mask):
        return self.mlp(self.bert(input_ids=ids, attention_mask=mask).last_hidden_state[:, 0])


def off_dropout_loss(z1, z2, z0, tau=0.05):
    n = z1.shape[0]
    pos = F.cosine_similarity(z1, z2, dim=-1) / tau
    u0 = F.normalize(z0, dim=-1)
    neg = (u0 @ u0.T) / tau
    neg = neg.masked_fill(torch.eye(n, dtype=torch.bool, device=z0.device), float("-inf"))
    logits = torch.cat([pos[:, None], neg], dim=1)
    return F.cross_entropy(logits, torch.zeros(n, dtype=torch.long, device=z0.device))


def dcl_loss(z1, z2, tau_d=5.0, eps=1e-5):
    n, d = z1.shape
    x1 = (z1 - z1.mean(0)) / torch.sqrt(z1.var(0, unbiased=False) + eps)
    x2 = (z2 - z2.mean(0)) / torch.sqrt(z2.var(0, unbiased=False) + eps)
    c = (x1.T @ x2) / (n * tau_d)
    return F.cross_entropy(c, torch.arange(d, device=z1.device))


def make_step(model, opt, precision, device):
    autocast = torch.autocast(device, dtype=torch.bfloat16, enabled=precision == "bf16")

    def step(ids, mask):
        with autocast:
            z12 = model(torch.cat([ids, ids]), torch.cat([mask, mask])).float()
            model.eval()
            z0 = model(ids, mask).float()
            model.train()
        n = ids.shape[0]
        z1, z2 = z12[:n], z12[n:]
        loss = off_dropout_loss(z1, z2, z0) + 0.1 * dcl_loss(z1, z2)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss

    return step


def bench(args, mode, precision, batch):
    layers, hidden, heads, inter = SIZES[args.model]
    cfg = BertConfig(vocab_size=30522, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                     intermediate_size=inter, max_position_embeddings=512, attn_implementation="eager")
    torch.manual_seed(0)
    cuda = args.device == "cuda"
    model = Encoder(cfg).to(args.device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-5, weight_decay=0.0)
    step = make_step(torch.compile(model) if mode == "compile" else model, opt, precision, args.device)
    ids = torch.randint(1000, 30000, (batch, args.seq_len), device=args.device)
    ids[:, 0] = 101
    ids[:, -1] = 102
    mask = torch.ones_like(ids)
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    for _ in range(3):  # warm-up (and compilation)
        step(ids, mask)
    sync()
    times, cpu = [], []
    if cuda:
        # As a training loop runs them (and as simcsepp's bench step times its own): steps queued back to
        # back, one synchronisation per round of --steps steps. A synchronisation after every step would
        # add the host's launch time to each step, which a real loop overlaps with the GPU's work. The
        # median round of 3.
        for _ in range(3):
            t0 = time.perf_counter()
            for _ in range(args.steps):
                step(ids, mask)
            sync()
            times.append((time.perf_counter() - t0) / args.steps)
    else:
        for _ in range(args.steps):
            t0, c0 = time.perf_counter(), time.process_time()
            step(ids, mask)
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
    times.sort()
    cpu.sort()
    sec = times[len(times) // 2]
    extra = {} if cuda else {"cpuSecondsPerStep": cpu[len(cpu) // 2], "threads": torch.get_num_threads()}
    return {
        "framework": "pytorch",
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name(0) if cuda else "cpu",
        **extra,
        "model": args.model,
        "mode": mode,
        "precision": precision,
        "batchSize": batch,
        "seqLen": args.seq_len,
        "stepsPerSec": 1.0 / sec,
        "sentencesPerSec": batch / sec,
        "peakBytes": torch.cuda.max_memory_allocated() if cuda else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch-sizes", default="64,512")
    p.add_argument("--seq-len", type=int, default=32)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--modes", default="eager,compile")
    p.add_argument("--precisions", default="fp32,bf16")
    p.add_argument("--model", default="base", choices=sorted(SIZES))
    p.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    p.add_argument("--json", help="append the results to this file as JSON lines")
    args = p.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        print(json.dumps({"framework": "pytorch", "error": "CUDA is not available to torch"}))
        return 0
    if args.device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False  # fp32 means fp32, as in simcsepp's fp32 path
        torch.backends.cudnn.allow_tf32 = False
    # Batch sizes before modes: the small batch's eager and compiled steps (gpu-check's first target) come first
    # when a timeout cuts the run.
    for precision in args.precisions.split(","):
        for batch in (int(b) for b in args.batch_sizes.split(",")):
            for mode in args.modes.split(","):
                try:
                    row = bench(args, mode, precision, batch)
                except Exception as e:  # one failing configuration (e.g. out of memory) does not end the run
                    row = {"framework": "pytorch", "mode": mode, "precision": precision, "batchSize": batch,
                           "error": str(e).split("\n")[0]}
                    if args.device == "cuda":
                        torch.cuda.empty_cache()
                line = json.dumps(row)
                print(line, flush=True)
                if args.json:
                    with open(args.json, "a") as f:
                        f.write(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
