"""`rag serve` under load, on loopback: `python -m bench.serve_load [--questions 200] [--write]`.

What it measures, against a server started as a user starts it (`rag serve --port 0`) over a
fresh index of the shipped corpus in bench/work/serve/:
1. start to ready: from starting the process to its first answered GET /api/health (3 starts);
2. extractive POST /api/ask, 1 client then 8 concurrent clients, N questions each run (the
   development set's questions, a different slice each run so no query vector is remembered):
   p50/p95 latency, throughput, errors;
3. the same 8 clients while `rag index` commits a new generation (one article added) half-way:
   errors, and how long after the commit the server answers from the new generation;
4. the LLM: first streamed byte and first verified sentence of `Accept: text/event-stream`
   answers once the model is loaded, and the server's resident memory with it loaded.

Every phase is bounded (a fixed number of questions, timeouts on every request); only loopback
addresses are used. `--write` writes bench/SERVE.md.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import queue
import shutil
import statistics
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from bench.common import RAG, ROOT, SCRAPES

WORK = ROOT / "bench" / "work" / "serve"
EXTRA = ROOT / "tests" / "data" / "one_article.md"
LLM_QUESTIONS = [
    "How does self-attention work?",
    "What is statistical significance?",
    "What is p-hacking?",
    "What does a data scientist do?",
    "What is a knowledge graph?",
    "How does self-attention work?",
]


def questions() -> list[str]:
    rows = [json.loads(line) for line in (ROOT / "eval" / "questions.jsonl").read_text().splitlines() if line]
    return [r["question"] for r in rows]


class Server:
    """`rag serve --port 0` over `index`, its address read from what it prints."""

    def __init__(self, index: Path, workers: int | None = None, threads: int | None = None) -> None:
        args = [*RAG, "serve", "--index", str(index), "--port", "0"]
        if workers:
            args += ["--workers", str(workers)]
        if threads is not None:
            args += ["--threads", str(threads)]
        self.t0 = time.perf_counter()
        self.proc = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT
        )
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: [lines.put(x) for x in self.proc.stdout], daemon=True).start()  # type: ignore[union-attr]
        while True:
            line = lines.get(timeout=120)
            if line.startswith("rag serve: http://127.0.0.1:"):
                self.port = int(line.rsplit(":", 1)[1].strip(" /\n"))
                break
        while True:  # ready: the first answered request
            try:
                status, _ = request(self.port, "GET", "/api/health")
                if status == 200:
                    break
            except OSError:
                time.sleep(0.01)
        self.ready_s = time.perf_counter() - self.t0

    def rss_mb(self) -> tuple[float, float]:
        """Resident memory now and at its peak (VmRSS, VmHWM), in MB."""
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        kb = {
            k: int(v.split()[0])
            for k, v in (line.split(":", 1) for line in status.splitlines())
            if k in ("VmRSS", "VmHWM")
        }
        return kb["VmRSS"] / 1024, kb["VmHWM"] / 1024

    def cpu_s(self) -> float:
        """CPU seconds the server has used, every thread (user + system)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def request(port: int, method: str, path: str, body: Any = None, timeout: float = 60) -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        data = json.dumps(body).encode() if body is not None else None
        conn.request(method, path, body=data, headers={"Content-Type": "application/json"} if data else {})
        r = conn.getresponse()
        return r.status, json.loads(r.read() or b"null")
    finally:
        conn.close()


def load(server: Server, qs: list[str], clients: int, midway: Any = None) -> dict[str, Any]:
    """`qs` asked by `clients` threads, each with its own keep-alive connection; `midway()` runs
    once half of them are answered."""
    port = server.port
    todo: queue.Queue[str] = queue.Queue()
    for q in qs:
        todo.put(q)
    latencies: list[float] = []
    errors: list[str] = []
    done = [0]
    lock = threading.Lock()
    half = threading.Event()

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        while True:
            try:
                q = todo.get_nowait()
            except queue.Empty:
                break
            t = time.perf_counter()
            try:
                body = json.dumps({"question": q, "mode": "extractive"}).encode()
                conn.request("POST", "/api/ask", body=body, headers={"Content-Type": "application/json"})
                r = conn.getresponse()
                payload = r.read()
                ok = r.status == 200 and json.loads(payload)["outcome"] in ("answered", "unsure", "abstained")
                if not ok:
                    errors.append(f"{r.status}: {payload[:200]!r}")
            except (OSError, http.client.HTTPException, ValueError) as e:
                errors.append(repr(e))
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            with lock:
                latencies.append(time.perf_counter() - t)
                done[0] += 1
                if done[0] * 2 >= len(qs):
                    half.set()
        conn.close()

    load0 = os.getloadavg()[0]
    cpu0 = server.cpu_s()
    t0 = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for th in threads:
        th.start()
    extra: Any = None
    if midway is not None:
        half.wait(timeout=600)
        extra = midway()
    for th in threads:
        th.join()
    wall = time.perf_counter() - t0
    cpu = server.cpu_s() - cpu0
    lat = sorted(latencies)
    return {
        "clients": clients,
        "questions": len(qs),
        "errors": len(errors),
        "error_samples": errors[:3],
        "p50": statistics.median(lat),
        "p95": lat[max(0, int(0.95 * len(lat)) - 1)],
        "throughput": len(qs) / wall,
        "wall": wall,
        "cpu_per_question": cpu / len(qs),
        "cores_used": cpu / wall,
        "load_before": load0,
        "load_after": os.getloadavg()[0],
        "midway": extra,
    }


def reindex(port: int, index: Path, scrapes: Path) -> dict[str, Any]:
    """Add one article and run `rag index`; then how long until /api/health names the new
    generation."""
    before = request(port, "GET", "/api/health")[1]["generation"]
    shutil.copy(EXTRA, scrapes / "zz_extra.md")
    t = time.perf_counter()
    p = subprocess.run(
        [*RAG, "index", "--scrapes", str(scrapes), "--index", str(index)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    committed = time.perf_counter()
    seen = None
    while time.perf_counter() - committed < 10:
        if request(port, "GET", "/api/health")[1]["generation"] > before:
            seen = time.perf_counter() - committed
            break
        time.sleep(0.01)
    return {
        "rc": p.returncode,
        "index_s": committed - t,
        "generation": [before, before + 1],
        "served_after_s": seen,
    }


def first_bytes(port: int) -> dict[str, Any]:
    """Streamed LLM answers once the model is loaded (the first one loads it): time to the first
    byte, to the first verified sentence, and the model's own first token."""
    out: dict[str, list[float]] = {"first_byte": [], "first_sentence": [], "first_token": [], "total": []}
    for i, q in enumerate(LLM_QUESTIONS):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        t = time.perf_counter()
        body = json.dumps({"question": q, "mode": "llm"}).encode()
        conn.request(
            "POST",
            "/api/ask",
            body=body,
            headers={"Content-Type": "application/json", "Accept": "text/event-stream"},
        )
        r = conn.getresponse()
        first = None
        sentence = None
        answer: dict[str, Any] = {}
        buf = b""
        while True:
            chunk = r.read1(65536)
            if not chunk:
                break
            if first is None:
                first = time.perf_counter() - t
            buf += chunk
            if sentence is None and b"event: sentence" in buf:
                sentence = time.perf_counter() - t
            if b"event: answer" in buf and buf.endswith(b"\n\n"):
                answer = json.loads(buf.split(b"event: answer\ndata: ", 1)[1])
        conn.close()
        if i == 0:
            continue  # loaded the model
        out["first_byte"].append(first or 0.0)
        if sentence is not None:
            out["first_sentence"].append(sentence)
        out["first_token"].append(answer.get("timings", {}).get("first_token", 0.0))
        out["total"].append(time.perf_counter() - t)
    return out


def starts(index: Path, args: argparse.Namespace) -> list[float]:
    """Start to ready, three times."""
    out = []
    for _ in range(3):
        s = Server(index, args.workers, args.threads)
        out.append(s.ready_s)
        s.stop()
    print(f"start to ready: {[round(x, 2) for x in out]}", flush=True)
    return out


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--questions", type=int, default=200)
    ap.add_argument("--workers", type=int, default=None, help="rag serve --workers (default: its own)")
    ap.add_argument("--threads", type=int, default=None, help="rag serve --threads (default: its own)")
    ap.add_argument("--write", action="store_true", help="write bench/SERVE.md")
    ap.add_argument("--rewrite", action="store_true", help="only write bench/SERVE.md from the last results")
    ap.add_argument("--only-starts", action="store_true", help="measure start to ready again, then --rewrite")
    args = ap.parse_args()
    if args.only_starts:  # start to ready again, into the last results (the rest kept)
        results = json.loads((WORK / "results.json").read_text())
        results["starts"] = starts(WORK / "idx", args)
        results["starts_when"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        (WORK / "results.json").write_text(json.dumps(results, indent=1))
        args.rewrite = True
    if args.rewrite:
        (ROOT / "bench" / "SERVE.md").write_text(report(json.loads((WORK / "results.json").read_text())))
        return
    shutil.rmtree(WORK, ignore_errors=True)
    scrapes, index = WORK / "scrapes", WORK / "idx"
    shutil.copytree(SCRAPES, scrapes)
    subprocess.run(
        [*RAG, "index", "--scrapes", str(scrapes), "--index", str(index)],
        check=True,
        capture_output=True,
        cwd=ROOT,
    )

    ready = starts(index, args)

    qs = questions()
    n = args.questions
    slices = [[qs[(i * n + j) % len(qs)] for j in range(n)] for i in range(3)]
    server = Server(index, args.workers, args.threads)
    try:
        for q in qs[:5]:  # warm: first reads of every part
            request(server.port, "POST", "/api/ask", {"question": q, "mode": "extractive"})
        one = load(server, slices[0], 1)
        print(f"1 client: {one}", flush=True)
        eight = load(server, slices[1], 8)
        print(f"8 clients: {eight}", flush=True)
        during = load(server, slices[2], 8, midway=lambda: reindex(server.port, index, scrapes))
        print(f"8 clients with a reindex: {during}", flush=True)
        rss_before_llm = server.rss_mb()
        llm = first_bytes(server.port)
        rss_llm = server.rss_mb()
        print(f"LLM: {llm}; RSS without / with the LLM: {rss_before_llm} / {rss_llm}", flush=True)
    finally:
        server.stop()
    results = {
        "starts": ready,
        "one": one,
        "eight": eight,
        "during": during,
        "llm": llm,
        "rss_before_llm": rss_before_llm,
        "rss_llm": rss_llm,
        "cpus": os.cpu_count(),
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    (WORK / "results.json").write_text(json.dumps(results, indent=1))
    if args.write:
        (ROOT / "bench" / "SERVE.md").write_text(report(results))
        print("wrote bench/SERVE.md")


def report(r: dict[str, Any]) -> str:
    one, eight, during, llm = r["one"], r["eight"], r["during"], r["llm"]
    mid = during["midway"] or {}

    def ms(x: float | None) -> str:
        return "-" if x is None else f"{x * 1000:.0f} ms"

    def cpu(x: dict[str, Any]) -> str:
        return ms(x["cpu_per_question"]) if "cpu_per_question" in x else "-"

    def cores(x: dict[str, Any]) -> str:
        return f"{x['cores_used']:.2f}" if "cores_used" in x else "-"

    rows = [
        ("1 client", one),
        ("8 clients", eight),
        ("8 clients, `rag index` committing half-way", during),
    ]
    table = "\n".join(
        f"| {name} | {x['questions']} | {x['errors']} | {ms(x['p50'])} | {ms(x['p95'])} | "
        f"{x['throughput']:.2f}/s | {cpu(x)} | {cores(x)} | {x['load_before']:.1f} → {x['load_after']:.1f} |"
        for name, x in rows
    )
    served = mid.get("served_after_s")
    starts_when = f"; measured again at {r['starts_when']}" if "starts_when" in r else ""
    return f"""# `rag serve` under load

`python -m bench.serve_load --write` ({r["when"]}, {r["cpus"]} cores, no GPU): a server started as a
user starts it (`rag serve --port 0`) over a fresh index of the shipped corpus, on loopback;
extractive `POST /api/ask`, the development set's questions (a different slice each run).

**This machine was shared while these numbers were taken**: other engineers' test runs and
evaluations and a training job ran beside it (the load average, in the table, was well above the
2 cores). Latencies and throughput here are upper and lower bounds of what an idle machine gives.

| run | questions | errors | p50 | p95 | throughput | server CPU a question | cores used | load average |
|---|---|---|---|---|---|---|---|---|
{table}

- throughput, 8 clients over 1: **{eight["throughput"] / one["throughput"]:.2f}x** (with the reindex:
  {during["throughput"] / one["throughput"]:.2f}x). Read it with the "cores used" column (the server's
  CPU seconds over the run's wall time): when the server gets no more CPU with 8 clients than
  with 1, the ratio measures the machine, not the server (here the kernel's autogroup shares the
  CPU between sessions: the server used {one.get("cores_used", 0):.2f} cores with one client and
  {eight.get("cores_used", 0):.2f} with eight, of 2). The server's CPU a question is what
  does not depend on the neighbours: at {cpu(one)} a question, two idle cores could answer
  about {2 / one["cpu_per_question"]:.1f} questions a second if the work ran side by side
  (an estimate, not a measurement). That it can: a profile of 20 questions in one process spent
  49.3 s of 52.7 s inside onnxruntime's `run` (embedder and reader), which releases the GIL; the
  other 3.4 s are tokenising, SQLite and FAISS (which release it too) and rag's own Python.
- reindex under load: `rag index` added one article (generation {mid.get("generation", ["?", "?"])[0]} →
  {mid.get("generation", ["?", "?"])[1]}, {mid.get("index_s", 0):.1f} s, exit {mid.get("rc")}) while 8 clients
  asked; **{during["errors"]} failed requests**; the server answered from the new generation
  {ms(served)} after the commit.
- start to ready (process start to the first answered `GET /api/health`, index and models
  loaded and run once{starts_when}): {", ".join(f"{x:.2f} s" for x in r["starts"])}
- resident memory: {r["rss_before_llm"][0]:.0f} MB before the LLM's first use,
  **{r["rss_llm"][0]:.0f} MB with the LLM loaded** (peak {r["rss_llm"][1]:.0f} MB)
- LLM answers streamed (`Accept: text/event-stream`, model loaded, {len(llm["first_byte"])} questions):
  first byte {ms(median(llm["first_byte"]))} p50 (the `meta` event, sent before any work), first verified
  sentence {ms(median(llm["first_sentence"]))} p50 ({len(llm["first_sentence"])} of {len(llm["first_byte"])}
  answers had a sentence that stood; the others quote the sources instead), the model's first token
  {ms(median(llm["first_token"]))} p50, whole answer {ms(median(llm["total"]))} p50.

Why `rag serve --threads 1` is the default (onnxruntime threads a question; the CLI's `rag ask`
keeps onnxruntime's own default, a thread a core): measured once in-process, `Service.ask` on the
development questions, 16 asked one after another and then 32 by 8 threads over 4 workers, on this
machine at a load average of 9–10: with one thread a question, 0.80 s a question alone and 0.72 s
a question 8 at a time; with a thread a core, 1.43 s and 0.88 s. On a busy machine a question's
two threads wait for each other; on an idle one `--threads 0` may answer a lone client sooner.
"""


if __name__ == "__main__":
    main()
