#!/usr/bin/env python3
"""The search behind the demo's recipe (docs/fmnist.md, "Short budgets"): trains one variant of
the fmnist-tiny recipe for a fixed amount of training work (images seen), computes the
target encoder's features once (last layer and last 4 blocks) and runs every evaluation on them:
the full linear probe (fmnist.fit_logreg), the 1% low-shot probe (60 labels per class, 5 fixed
draws) and a kNN classifier (cosine, k=20). Appends one JSON line per feature set to
--out/results.jsonl and keeps the checkpoint and features there.

  python3 examples/fmnist_search.py --baselines --seed 0              # random init + raw pixels
  python3 examples/fmnist_search.py --name b64 --batch 64 --images 84000 --seed 0 --threads 1
"""
import argparse
import os
import sys
import time

import numpy as np

import fmnist as F
import ijepa


def save_features(out, tag, base, ftr, fte):
    import json
    np.save(os.path.join(out, f"feat_{tag}_train.npy"), ftr)
    np.save(os.path.join(out, f"feat_{tag}_test.npy"), fte)
    with open(os.path.join(out, f"feat_{tag}.json"), "w") as f:
        json.dump(base, f)


def eval_saved(out, tag, prefix, ty, vy, draws, sklearn_check):
    import json
    with open(os.path.join(out, f"feat_{tag}.json")) as f:
        base = json.load(f)
    ftr = np.load(os.path.join(out, f"feat_{tag}_train.npy"))
    fte = np.load(os.path.join(out, f"feat_{tag}_test.npy"))
    D = ftr.shape[1] // 4
    evaluate_sets(out, base, {f"{prefix}_last1": (ftr[:, -D:], fte[:, -D:]), f"{prefix}_last4": (ftr, fte)},
                  ty, vy, draws, sklearn_check)


def evaluate_sets(out, base, sets, ty, vy, draws, sklearn_check):
    for feat_name, (ftr, fte) in sets.items():
        t = time.time()
        r = F.evaluate(ftr, ty, fte, vy, draws)
        r.update(base, features=feat_name, eval_s=time.time() - t)
        F.write_json_line(os.path.join(out, "results.jsonl"), r)
        print(f"  {base.get('name')} seed {base.get('seed')} {feat_name:14s} linear {100 * r['linear']:.1f}%  "
              f"1% {100 * r['low_shot']:.1f}±{100 * r['low_shot_std']:.1f}%  kNN {100 * r['knn']:.1f}%"
              f"  std {r['feature_std']:.3f}  [{r['eval_s']:.0f} s]", flush=True)


def print_table(path):
    """One row per (variant, seed, features), the latest measurement of each; the differences
    are against the random-init encoder of the same seed and features."""
    import json
    rows = {}
    with open(path) as f:
        for line in f:
            r = json.loads(line)
            rows[(r["name"], r.get("seed"), r["features"])] = r
    def pct(v):
        return f"{100 * v:.1f}%"
    print("| variant | seed | batch | steps | images | lr | EMA start | ragged | features | linear | 1% (5 draws) | kNN k=20 "
          "| Δ random init (linear / 1% / kNN) | feature std |")
    print("|---|---:|---:|---:|---:|---:|---:|---|---|---:|---:|---:|---|---:|")
    for (name, seed, feat), r in rows.items():
        base = rows.get(("random-init", seed, feat.replace("context_", "target_")))
        delta = "" if base is None or name == "random-init" else " / ".join(
            f"{100 * (r[k] - base[k]):+.1f}" for k in ("linear", "low_shot", "knn"))
        print(f"| {name} | {'' if seed is None else seed} | {r.get('batch', '')} | {r.get('steps', '')} "
              f"| {r.get('images', '')} | {r.get('lr', '')} | {r.get('ema_start', '')} "
              f"| {'yes' if r.get('ragged') else ''} | {feat} | {pct(r['linear'])} "
              f"| {pct(r['low_shot'])} ± {100 * r['low_shot_std']:.1f} | {pct(r['knn'])} | {delta} "
              f"| {r['feature_std']:.3f} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--name", default="official")
    ap.add_argument("--out", default="out/demo-search")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--images", type=int, default=84000, help="training work: images seen (steps = images // batch)")
    ap.add_argument("--ragged", action="store_true")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--ema-start", type=float, default=0.996)
    ap.add_argument("--warmup", type=float, default=0.1, help="warmup fraction of the steps")
    ap.add_argument("--context", action="store_true", help="also evaluate the context encoder")
    ap.add_argument("--baselines", action="store_true", help="random init (this seed) and raw pixels only")
    ap.add_argument("--sklearn-check", action="store_true")
    ap.add_argument("--no-eval", action="store_true", help="train and save the features only")
    ap.add_argument("--eval-only", action="store_true", help="evaluate the saved features of --name/--seed")
    ap.add_argument("--table", action="store_true",
                    help="print --out/results.jsonl as a markdown table (pretrained - random init of the same seed)")
    ap.add_argument("--encoder-of-checkpoint", choices=("target", "context"),
                    help="compute and evaluate this encoder's features from the saved --name/--seed checkpoint")
    a = ap.parse_args()
    if a.table:
        return print_table(os.path.join(a.out, "results.jsonl"))
    os.makedirs(a.out, exist_ok=True)
    tx, ty, vx, vy = F.load_fmnist()
    draws = F.low_shot_draws(ty)
    lib = ijepa.version()
    if a.eval_only:
        if a.name == "raw-pixels":
            px, pv = tx.reshape(len(tx), -1), vx.reshape(len(vx), -1)
            evaluate_sets(a.out, dict(name="raw-pixels", seed=None, library=lib), {"pixels": (px, pv)},
                          ty, vy, draws, a.sklearn_check)
            return
        for enc in ("target", "context"):
            tag = f"{a.name}_seed{a.seed}_{enc}"
            if os.path.exists(os.path.join(a.out, f"feat_{tag}.json")):
                eval_saved(a.out, tag, enc, ty, vy, draws, a.sklearn_check)
        return
    if a.encoder_of_checkpoint:
        tag = f"{a.name}_seed{a.seed}"
        enc = a.encoder_of_checkpoint
        with open(os.path.join(a.out, f"feat_{tag}_target.json")) as f:
            import json
            base = json.load(f)
        with ijepa.Model.load(os.path.join(a.out, f"{tag}.safetensors"), n_threads=a.threads) as model:
            t = time.time()
            ftr, fte = F.features(model, tx, last_k=4, encoder=enc), F.features(model, vx, last_k=4, encoder=enc)
        save_features(a.out, f"{tag}_{enc}", dict(base, features_s=time.time() - t), ftr, fte)
        if not a.no_eval:
            eval_saved(a.out, f"{tag}_{enc}", enc, ty, vy, draws, a.sklearn_check)
        return
    if a.baselines:
        base = dict(name="random-init", seed=a.seed, library=lib)
        with ijepa.Model(F.recipe_config(100, seed=a.seed, n_threads=a.threads)) as rnd:
            t = time.time()
            ftr, fte = F.features(rnd, tx, last_k=4), F.features(rnd, vx, last_k=4)
            base["features_s"] = time.time() - t
        save_features(a.out, f"random-init_seed{a.seed}_target", base, ftr, fte)
        if not a.no_eval:
            eval_saved(a.out, f"random-init_seed{a.seed}_target", "target", ty, vy, draws, a.sklearn_check)
        if a.no_eval:
            return
        px, pv = tx.reshape(len(tx), -1), vx.reshape(len(vx), -1)
        evaluate_sets(a.out, dict(name="raw-pixels", seed=None, library=lib), {"pixels": (px, pv)},
                      ty, vy, draws, a.sklearn_check)
        return
    steps = a.images // a.batch
    cfg = F.recipe_config(steps, seed=a.seed, n_threads=a.threads, ragged=a.ragged)
    cfg.update(lr=a.lr, start_lr=a.lr / 5, ema_start=a.ema_start, warmup_steps=max(1, int(a.warmup * steps)))
    tag = f"{a.name}_seed{a.seed}"
    print(f"{tag}: batch {a.batch}, {steps} steps ({steps * a.batch / len(tx):.2f} epochs), "
          f"ragged {a.ragged}, lr {a.lr:g}, ema {a.ema_start:g}->1, warmup {cfg.warmup_steps}", flush=True)
    model = ijepa.Model(cfg)
    hist = {}
    c0 = time.process_time()
    losses, wall = F.pretrain(model, tx, steps, seed=a.seed, log_every=max(1, steps // 20), history=hist,
                              batch=a.batch)
    cpu = time.process_time() - c0
    model.save(os.path.join(a.out, f"{tag}.safetensors"), training_state=True)
    base = dict(name=a.name, seed=a.seed, batch=a.batch, steps=steps, images=steps * a.batch,
                epochs=steps * a.batch / len(tx), ragged=a.ragged, lr=a.lr, ema_start=a.ema_start,
                warmup_steps=cfg.warmup_steps, train_wall_s=wall, train_cpu_s=cpu,
                train_cpu_img_s=steps * a.batch / cpu, threads=a.threads,
                mean_context=float(np.mean(hist["context_length"])),
                loss_first=losses[0], loss_min=float(np.min(losses)),
                loss_at_10pct=[float(np.mean(losses[max(0, int(steps * k / 10) - 5):max(1, int(steps * k / 10))]))
                               for k in range(1, 11)], library=lib)
    for enc in ("target", "context") if a.context else ("target",):
        t = time.time()
        ftr, fte = F.features(model, tx, last_k=4, encoder=enc), F.features(model, vx, last_k=4, encoder=enc)
        save_features(a.out, f"{tag}_{enc}", dict(base, features_s=time.time() - t), ftr, fte)
        if not a.no_eval:
            eval_saved(a.out, f"{tag}_{enc}", enc, ty, vy, draws, a.sklearn_check)
    model.close()


if __name__ == "__main__":
    sys.exit(main())
