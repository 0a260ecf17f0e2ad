"""Tiny random sentence-transformers models, saved and run by sentence-transformers itself (PyTorch, CPU):
test/transformers-parity.test.ts loads each folder with SentenceEncoder and compares the vectors. Each model is a
Transformer (a random tiny BERT, DistilBERT, MPNet or ModernBERT with a WordPiece tokenizer of the given words), a Pooling
module and, for some, Dense modules and a Normalize, as real models are built (LaBSE: CLS, Dense tanh, Normalize;
distiluse: mean, Dense tanh; all-mpnet-base-v2: mean, Normalize; e5: mean, Normalize, "query: " and "passage: "
prompts; gte-modernbert: CLS, Normalize; instruct: mean without the prompt's tokens, include_prompt false). <out>/<name>/ is the saved model, <out>/<name>.json the sentences and sentence-transformers' vectors (and,
for a model with prompts, its vectors with each prompt, by prompt name).

Usage: python3 st_models.py OUT_DIR WORDS_FILE   (WORDS_FILE: one word per line; prints the names written)
"""

import json
import os
import sys

import torch
import transformers
from sentence_transformers import SentenceTransformer, models

SENTENCES = [
    "the cat sat on the mat",
    "A dog",
    "",
    "the the the the the the the the the the the the the the the the the the the the the the the",
    "Bird river house",
]


def tiny(kind, vocab_dir):
    sizes = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64)
    if kind == "bert":
        config = transformers.BertConfig(**sizes, vocab_size=VOCAB_SIZE, max_position_embeddings=40)
        return transformers.BertModel(config), transformers.BertTokenizerFast(os.path.join(vocab_dir, "vocab.txt"))
    if kind == "distilbert":
        config = transformers.DistilBertConfig(
            vocab_size=VOCAB_SIZE, dim=32, n_layers=2, n_heads=4, hidden_dim=64, max_position_embeddings=40
        )
        return transformers.DistilBertModel(config), transformers.DistilBertTokenizerFast(os.path.join(vocab_dir, "vocab.txt"))
    if kind == "modernbert":
        # A window of 9 each way (local_attention 18): active on the 16-token sentence, yet wide enough that no padded
        # query of a batch of 2 sorted by length is left without a real key, which transformers' eager attention
        # turns into NaN that reaches the real tokens of the next layer.
        config = transformers.ModernBertConfig(
            hidden_size=32, num_hidden_layers=4, num_attention_heads=4, intermediate_size=48, vocab_size=VOCAB_SIZE,
            max_position_embeddings=64, pad_token_id=0, cls_token_id=2, sep_token_id=3, bos_token_id=2, eos_token_id=3,
            local_attention=18, attention_dropout=0.1, mlp_dropout=0.1, embedding_dropout=0.1,
            attn_implementation="eager",
        )
        return transformers.ModernBertModel(config), transformers.BertTokenizerFast(os.path.join(vocab_dir, "vocab.txt"))
    config = transformers.MPNetConfig(**sizes, vocab_size=VOCAB_SIZE, max_position_embeddings=42, layer_norm_eps=1e-5)
    return transformers.MPNetModel(config), transformers.MPNetTokenizerFast(os.path.join(vocab_dir, "mpnet_vocab.txt"))


def main(out, words_file):
    global VOCAB_SIZE
    with open(words_file) as f:
        words = [w.strip() for w in f if w.strip()]
    vocab_dir = os.path.join(out, "vocab")
    os.makedirs(vocab_dir, exist_ok=True)
    bert_vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words
    # MPNet's vocabulary: RoBERTa's specials first (<pad> = 1, as its position ids assume), BERT's [UNK].
    mpnet_vocab = ["<s>", "<pad>", "</s>", "[UNK]", "<mask>"] + words
    for name, vocab in [("vocab.txt", bert_vocab), ("mpnet_vocab.txt", mpnet_vocab)]:
        with open(os.path.join(vocab_dir, name), "w") as f:
            f.write("\n".join(vocab) + "\n")
    VOCAB_SIZE = len(bert_vocab)

    torch.manual_seed(0)
    for name, kind, pooling, dense, normalize, prompts, include_prompt in [
        ("labse-like", "bert", "cls", [("tanh", 24)], True, None, True),
        ("distiluse-like", "distilbert", "mean", [("tanh", 20), ("identity", 16)], False, None, True),
        ("all-mpnet-like", "mpnet", "mean", [], True, None, True),
        ("e5-like", "bert", "mean", [], True, {"query": "query: ", "passage": "passage: "}, True),
        ("gte-modernbert-like", "modernbert", "cls", [], True, None, True),
        # Instruction models' pooling (INSTRUCTOR's): the prompt is attended to but left out of the mean.
        ("instruct-like", "bert", "mean", [], True, {"query": "the cat sat on the mat: "}, False),
    ]:
        model, tokenizer = tiny(kind, vocab_dir)
        hf_dir = os.path.join(out, name + "-hf")
        model.save_pretrained(hf_dir, safe_serialization=True)
        tokenizer.save_pretrained(hf_dir)
        modules = [models.Transformer(hf_dir, max_seq_length=16)]
        modules.append(models.Pooling(32, pooling_mode=pooling, include_prompt=include_prompt))
        width = 32
        for activation, size in dense:
            fn = torch.nn.Tanh() if activation == "tanh" else torch.nn.Identity()
            modules.append(models.Dense(width, size, activation_function=fn))
            width = size
        if normalize:
            modules.append(models.Normalize())
        st = SentenceTransformer(modules=modules, device="cpu", prompts=prompts)
        with torch.no_grad():
            # Far from the initialisation's small weights and unit LayerNorms, so that a misread tensor shows.
            for p in st.parameters():
                p.normal_(0.0, 0.4)
        folder = os.path.join(out, name)
        st.save(folder)
        vectors = st.encode(SENTENCES, convert_to_numpy=True, batch_size=2)
        prompted = {p: st.encode(SENTENCES, prompt_name=p, convert_to_numpy=True, batch_size=2).tolist() for p in prompts or {}}
        with open(os.path.join(out, name + ".json"), "w") as f:
            json.dump(dict(sentences=SENTENCES, vectors=vectors.tolist(), prompted=prompted), f)
        print(name)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
