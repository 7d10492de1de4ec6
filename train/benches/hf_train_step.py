#!/usr/bin/env python3
"""The Python side of benches/train_step.rs: one NEZHA pretraining step
(forward, TF-style losses, backward, global-norm clip, LAMB) with Hugging Face
`NezhaForPreTraining` (transformers 4.57.6) on the same libtorch (torch
2.13.0), same config, batch shape and thread count. LAMB is the independent
implementation of the reference formulas in scripts/fixtures/lamb.py.

Two variants:
  hf-full      HF's head as HF runs it: MLM logits for all B*L positions.
  hf-gathered  the MLM head applied to the masked positions only, as the
               TF reference and our Rust model do (the same FLOPs as ours).

    python train/benches/hf_train_step.py --config base --batch 8 --seq 128 --threads 2 --steps 3
"""
import argparse
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts", "fixtures"))
from lamb import lamb_step  # noqa: E402
from transformers.models.deprecated.nezha import NezhaConfig, NezhaForPreTraining  # noqa: E402

SIZES = {
    "tiny": dict(hidden_size=128, num_hidden_layers=2, num_attention_heads=2, intermediate_size=512),
    "base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
    "large": dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096),
}


def make_batch(b, l, p, vocab, gen):
    ids = torch.randint(1, vocab, (b, l), generator=gen)
    mask = torch.ones(b, l, dtype=torch.long)
    for r in range(b):
        n = l - int(torch.randint(0, l // 4, (1,), generator=gen))
        mask[r, n:] = 0
        ids[r, n:] = 0
    seg = torch.zeros(b, l, dtype=torch.long)
    seg[:, l // 2:] = 1
    pos = torch.stack([torch.randperm(l // 2, generator=gen)[:p].sort().values + 1 for _ in range(b)])
    mids = torch.randint(0, vocab, (b, p), generator=gen)
    w = torch.ones(b, p)
    nsp = torch.randint(0, 2, (b,), generator=gen)
    return ids, mask, seg, pos, mids, w, nsp


def tf_loss(mlm_logits, nsp_logits, mids, w, nsp):
    logp = torch.log_softmax(mlm_logits.float(), -1)
    nll = -logp.gather(1, mids.reshape(-1, 1))[:, 0]
    w = w.reshape(-1)
    mlm = (w * nll).sum() / (w.sum() + 1e-5)
    nsp_loss = torch.nn.functional.cross_entropy(nsp_logits.float(), nsp)
    return mlm + nsp_loss


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="base")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--predictions", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--variants", default="hf-gathered,hf-full")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--bf16", action="store_true", help="torch.autocast bf16 (f32 master weights)")
    a = ap.parse_args()
    dev = torch.device(a.device)
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    cfg = NezhaConfig(vocab_size=21128, hidden_act="gelu_new", max_relative_position=64,
                      max_position_embeddings=512, **SIZES[a.config])
    model = NezhaForPreTraining(cfg).to(dev).train()
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    moments = {n: (torch.zeros_like(p), torch.zeros_like(p)) for n, p in params}
    gen = torch.Generator().manual_seed(1)
    batch = make_batch(a.batch, a.seq, a.predictions, cfg.vocab_size, gen)
    ids, mask, seg, pos, mids, w, nsp = (t.to(dev) for t in batch)
    rows = (pos + torch.arange(a.batch, device=dev)[:, None] * a.seq).reshape(-1)

    def step(variant, t):
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=a.bf16):
            return forward_backward(variant, t)

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    def forward_backward(variant, t):
        if variant == "hf-full":
            out = model(input_ids=ids, attention_mask=mask, token_type_ids=seg)
            mlm_logits = out.prediction_logits.reshape(a.batch * a.seq, -1)[rows]
            nsp_logits = out.seq_relationship_logits
        else:
            seq, pooled = model.nezha(input_ids=ids, attention_mask=mask, token_type_ids=seg)[:2]
            mlm_logits = model.cls.predictions(seq.reshape(a.batch * a.seq, -1)[rows])
            nsp_logits = model.cls.seq_relationship(pooled)
        loss = tf_loss(mlm_logits, nsp_logits, mids, w, nsp)
        with torch.autocast(dev.type, enabled=False):
            loss.backward()
        torch.nn.utils.clip_grad_norm_([p for _, p in params], 1.0)
        with torch.no_grad():
            for n, p in params:
                m, v = moments[n]
                new_w, m, v = lamb_step(p, m, v, p.grad, 1e-4, t, n)
                p.copy_(new_w)
                moments[n] = (m, v)
                p.grad = None

    for variant in a.variants.split(","):
        step(variant, 1)  # warm-up
        sync()
        times = []
        for s in range(a.steps):
            t0 = time.perf_counter()
            step(variant, s + 2)
            sync()
            times.append(time.perf_counter() - t0)
        med = statistics.median(times)
        print(f"{variant:12s} {a.config} b{a.batch} L{a.seq} {a.device}{' bf16' if a.bf16 else ''} threads {a.threads}: "
              f"median {med:.3f} s/step, {a.batch / med:.2f} seq/s; best {min(times):.3f} s/step "
              f"(steps: {', '.join(f'{x:.3f}' for x in times)})",
              flush=True)


if __name__ == "__main__":
    main()
