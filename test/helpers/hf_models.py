"""Tiny random models of every architecture simcsepp reads, made and run by transformers itself (PyTorch, CPU,
float64 for the reference numbers): test/transformers-parity.test.ts loads the saved folders with BertModel and
compares. For each model type: <out>/<type>/ holds config.json and model.safetensors (transformers'
save_pretrained), and <out>/<type>.json the inputs and transformers' numbers:
  hidden   last_hidden_state of the batch, eval mode (ModernBERT's padded rows are not compared: where no real
           key is in a padded query's window, transformers spreads it over the padding, we over the real keys)
  grads    d(sum(mean_pool(last_hidden_state) * R)) / d(parameter) for every parameter, by transformers' name
           (dropout off: the config's probabilities are 0), R the given weights

Usage: python3 hf_models.py OUT_DIR   (prints the model types written, one per line)
"""

import json
import os
import sys

import torch
import transformers

B, T = 3, 9
LENGTHS = [9, 5, 1]

SIZES = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, vocab_size=60)
NO_DROPOUT = dict(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)


def configs():
    bert = transformers.BertConfig(**SIZES, **NO_DROPOUT, max_position_embeddings=40, type_vocab_size=2)
    roberta_like = dict(**SIZES, **NO_DROPOUT, max_position_embeddings=42, pad_token_id=1, type_vocab_size=1)
    return {
        "bert": (bert, transformers.BertModel),
        "roberta": (transformers.RobertaConfig(**roberta_like), transformers.RobertaModel),
        "xlm-roberta": (transformers.XLMRobertaConfig(**roberta_like), transformers.XLMRobertaModel),
        "camembert": (transformers.CamembertConfig(**roberta_like), transformers.CamembertModel),
        "distilbert": (
            transformers.DistilBertConfig(
                vocab_size=60, dim=32, n_layers=2, n_heads=4, hidden_dim=64, dropout=0.0, attention_dropout=0.0,
                max_position_embeddings=40,
            ),
            transformers.DistilBertModel,
        ),
        "mpnet": (
            transformers.MPNetConfig(
                **SIZES, **NO_DROPOUT, max_position_embeddings=42, pad_token_id=1, layer_norm_eps=1e-5,
                relative_attention_num_buckets=32,
            ),
            transformers.MPNetModel,
        ),
        # Four layers: global, local, local, global (global_attn_every_n_layers 3); a window of 2 tokens each way
        # (local_attention 4) shorter than the batch's 9, so that it shows; two RoPE bases.
        "modernbert": (
            transformers.ModernBertConfig(
                vocab_size=60, hidden_size=32, num_hidden_layers=4, num_attention_heads=4, intermediate_size=48,
                max_position_embeddings=64, pad_token_id=0, bos_token_id=1, eos_token_id=2, cls_token_id=1,
                sep_token_id=2, local_attention=4, global_attn_every_n_layers=3, global_rope_theta=160000.0,
                local_rope_theta=10000.0, attn_implementation="eager",
            ),
            transformers.ModernBertModel,
        ),
    }


def modernbert_unpadded(model, ids, weights):
    """ModernBERT one sentence at a time, without padding: a padded query whose window holds no real key gets a
    NaN row in transformers (every score masked), and autograd carries NaN from there into every gradient. The
    real rows are those of the padded batch. Returns last_hidden_state with zeros at the padding; the gradients of
    the batch's loss are accumulated in .grad."""
    hidden = torch.zeros(B, T, model.config.hidden_size, dtype=torch.float64)
    for b, n in enumerate(LENGTHS):
        h = model(input_ids=ids[b : b + 1, :n]).last_hidden_state[0]
        (h.mean(0) * weights[b].double()).sum().backward()
        hidden[b, :n] = h.detach()
    return hidden


def main(out):
    torch.manual_seed(0)
    for name, (config, cls) in configs().items():
        model = cls(config).eval()
        with torch.no_grad():
            # Far from the initialisation's small weights and unit LayerNorms, so that a swapped or misread
            # tensor shows.
            for p in model.parameters():
                p.normal_(0.0, 0.4)
        folder = os.path.join(out, name)
        model.save_pretrained(folder, safe_serialization=True)

        pad = config.pad_token_id if config.pad_token_id is not None else 0
        mask = torch.tensor([[1 if t < n else 0 for t in range(T)] for n in LENGTHS])
        g = torch.Generator().manual_seed(1)
        ids = torch.randint(3, config.vocab_size, (B, T), generator=g)
        ids = torch.where(mask.bool(), ids, torch.full_like(ids, pad))
        weights = torch.randn(B, config.hidden_size if hasattr(config, "hidden_size") else config.dim, generator=g)

        model = model.double()
        if name == "modernbert":
            hidden = modernbert_unpadded(model, ids, weights)
        else:
            inputs = dict(input_ids=ids, attention_mask=mask)
            hidden = model(**inputs).last_hidden_state
            pooled = (hidden * mask[:, :, None]).sum(1) / mask.sum(1, keepdim=True)
            (pooled * weights.double()).sum().backward()
        grads = {n: p.grad.flatten().tolist() for n, p in model.named_parameters() if p.grad is not None}
        with open(os.path.join(out, name + ".json"), "w") as f:
            json.dump(
                dict(
                    ids=ids.flatten().tolist(),
                    mask=mask.flatten().tolist(),
                    B=B,
                    T=T,
                    weights=weights.flatten().tolist(),
                    hidden=hidden.detach().flatten().tolist(),
                    grads=grads,
                ),
                f,
            )
        print(name)


if __name__ == "__main__":
    main(sys.argv[1])
