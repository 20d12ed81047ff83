#!/usr/bin/env python3
"""ONNX models for bench/run_bench_encode.py, each made in its own process.

usage: python3 bench/encode_export_onnx.py fp32 MODEL_DIR OUT_DIR
       python3 bench/encode_export_onnx.py int8 FP32_ONNX OUT_DIR

fp32: loads the Hugging Face directory with transformers' IJepaModel (the same weights the other
engines load) and exports a wrapper whose output is the pooled feature, the mean over tokens of
last_hidden_state, with torch.onnx.export(dynamo=False, opset_version=17) and a dynamic batch
axis. Models over 2 GB (ViT-H) are written by torch with external data files beside the .onnx.
int8: onnxruntime.quantization.quantize_dynamic of that model (MatMul weights to int8, per
tensor; activations quantized at run time), for reference only.
Both write OUT_DIR/model.onnx through OUT_DIR.tmp and a rename.
"""
import json
import os
import shutil
import sys
import time


def export_fp32(model_dir, out_dir):
    sys.modules["torchvision"] = None  # transformers: treat the (mismatched) torchvision as absent
    import torch
    from transformers import IJepaModel

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    model = IJepaModel.from_pretrained(model_dir, add_pooling_layer=False, dtype=torch.float32).eval()
    cfg = model.config

    class Pooled(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, pixel_values):
            return self.m(pixel_values=pixel_values).last_hidden_state.mean(dim=1)

    x = torch.randn(2, cfg.num_channels, cfg.image_size, cfg.image_size)
    tmp = out_dir.rstrip("/") + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    t = time.time()
    with torch.no_grad():
        torch.onnx.export(Pooled(model), (x,), os.path.join(tmp, "model.onnx"), dynamo=False,
                          opset_version=17, input_names=["pixel_values"], output_names=["pooled"],
                          dynamic_axes={"pixel_values": {0: "batch"}, "pooled": {0: "batch"}},
                          do_constant_folding=True)
    secs = time.time() - t
    shutil.rmtree(out_dir, ignore_errors=True)
    os.rename(tmp, out_dir)
    files = os.listdir(out_dir)
    print(json.dumps({"onnx": os.path.join(out_dir, "model.onnx"), "seconds": secs,
                      "files": len(files), "attn_implementation": model.config._attn_implementation,
                      "bytes": sum(os.path.getsize(os.path.join(out_dir, f)) for f in files)}))


def quantize_int8(fp32_onnx, out_dir):
    from onnxruntime.quantization import QuantType, quantize_dynamic

    tmp = out_dir.rstrip("/") + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    t = time.time()
    quantize_dynamic(fp32_onnx, os.path.join(tmp, "model.onnx"), weight_type=QuantType.QInt8,
                     op_types_to_quantize=["MatMul"], per_channel=False)
    secs = time.time() - t
    shutil.rmtree(out_dir, ignore_errors=True)
    os.rename(tmp, out_dir)
    files = os.listdir(out_dir)
    print(json.dumps({"onnx": os.path.join(out_dir, "model.onnx"), "seconds": secs,
                      "bytes": sum(os.path.getsize(os.path.join(out_dir, f)) for f in files)}))


def main():
    if len(sys.argv) != 4 or sys.argv[1] not in ("fp32", "int8"):
        raise SystemExit(__doc__)
    if sys.argv[1] == "fp32":
        export_fp32(sys.argv[2], sys.argv[3])
    else:
        quantize_int8(sys.argv[2], sys.argv[3])


if __name__ == "__main__":
    main()
