"""How much a pretrained NEZHA's attention still mixes: for the first 64
reviews of a classification dev file, the mean entropy (nats) of each
layer's attention rows, and how much of the [CLS] row goes to [CLS] and to
[SEP]. Near 0 nats every head looks at one token; fine-tuning a classifier
on [CLS] then barely moves (README, "Fine-tuning and checkpoints").

    nezha convert nezha CHECKPOINT/model.safetensors hf /tmp/hf
    ~/.cache/nezha/hf/bin/python scripts/attention_entropy.py /tmp/hf DEV.tsv VOCAB

Needs transformers==4.57.6 with torch (the environment of
scripts/fixtures/model.py). Pass `random` instead of a directory for a
freshly initialised model of the tiny config, for comparison.
"""
import sys

import torch
from transformers import BertTokenizer
from transformers.models.deprecated.nezha import NezhaConfig, NezhaModel


def main(model_dir, dev_tsv, vocab):
    tok = BertTokenizer(vocab)
    rows = [line.split("\t", 1) for line in open(dev_tsv, encoding="utf-8").read().splitlines()[1:65]]
    enc = tok([r[1] for r in rows], padding="max_length", truncation=True, max_length=64,
              return_tensors="pt")
    if model_dir == "random":
        torch.manual_seed(0)
        model = NezhaModel(NezhaConfig(vocab_size=21128, hidden_size=128, num_hidden_layers=2,
                                       num_attention_heads=2, intermediate_size=512,
                                       max_relative_position=64))
    else:
        model = NezhaModel.from_pretrained(model_dir)
    model.eval()
    with torch.no_grad():
        attentions = model(**enc, output_attentions=True).attentions
    mask = enc["attention_mask"].bool()
    sep = enc["input_ids"] == tok.sep_token_id
    for layer, a in enumerate(attentions):  # batch, head, query, key
        rows = a[mask[:, None, :].expand(-1, a.shape[1], -1)]  # every real query row
        entropy = -(rows.clamp_min(1e-12).log() * rows).sum(-1).mean().item()
        cls = a[:, :, 0, :]
        print(f"layer {layer}: entropy {entropy:.2f} nats; [CLS] row: "
              f"{cls[:, :, 0].mean().item():.3f} to [CLS], "
              f"{(cls * sep[:, None, :]).sum(-1).mean().item():.3f} to [SEP]")


if __name__ == "__main__":
    main(*sys.argv[1:4])
