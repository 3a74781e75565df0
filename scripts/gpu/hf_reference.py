"""Hugging Face transformers' side of scripts/gpu-check, run on the GPU machine.

Writes a random-weight checkpoint of the Llama-3-8B shape (bf16, save_pretrained), then on the
same weights: the last-position logits and a greedy continuation for a few prompts (the parity
reference), and the model card's way of generating, timed, for the two throughput workloads.
With each throughput workload, the decode floor measured here on the same weights: batch 1, the
weights' bytes over the device's copy bandwidth; larger batches, one decode step's GEMMs (every
projection of the 32 layers and lm_head, torch's cuBLAS) plus attention reading the KV cache at the
workload's mean context (torch SDPA), as ../shared/device/README.md measures it.
Everything lands in OUT_DIR/hf-reference.json and OUT_DIR/hf-logits-<i>.f32 (raw little-endian f32).
"""
import json
import sys
import time

import torch

from random_llama8b import CONFIG as config, write

checkpoint, out_dir = sys.argv[1], sys.argv[2]
model = write(checkpoint)

generator = torch.Generator().manual_seed(1)
def random_ids(n):
    return torch.randint(1000, 120000, (n,), generator=generator).tolist()

def timed_ms(fn, repeats=5):
    fn()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(repeats):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / repeats


def copy_bandwidth():
    """Bytes per second through device memory in a 1 GiB device-to-device copy (read and write counted)."""
    a = torch.empty(1 << 30, dtype=torch.uint8, device="cuda")
    b = torch.empty_like(a)
    return 2 * a.numel() / (timed_ms(lambda: b.copy_(a)) / 1000)


def decode_step_floor_ms(batch, context):
    """One decode step's GEMMs and attention at `context` keys, in ms: (gemms, attention)."""
    layers = model.model.layers
    x = torch.randn(batch, config.hidden_size, device="cuda", dtype=torch.bfloat16)
    h = torch.randn(batch, config.intermediate_size, device="cuda", dtype=torch.bfloat16)
    linear = torch.nn.functional.linear
    def gemms():
        for layer in layers:
            a, m = layer.self_attn, layer.mlp
            linear(x, a.q_proj.weight), linear(x, a.k_proj.weight), linear(x, a.v_proj.weight), linear(x, a.o_proj.weight)
            linear(x, m.gate_proj.weight), linear(x, m.up_proj.weight), linear(h, m.down_proj.weight)
        linear(x, model.lm_head.weight)
    head_dim = config.hidden_size // config.num_attention_heads
    q = torch.randn(batch, config.num_attention_heads, 1, head_dim, device="cuda", dtype=torch.bfloat16)
    k = torch.randn(batch, config.num_key_value_heads, context, head_dim, device="cuda", dtype=torch.bfloat16)
    v = torch.randn_like(k)
    def attention():
        for _ in layers:
            torch.nn.functional.scaled_dot_product_attention(q, k, v, enable_gqa=True)
    return timed_ms(gemms), timed_ms(attention)


reference = {"parity": [], "throughput": []}
with torch.no_grad():
    for i, length in enumerate([16, 64, 200, 512]):
        prompt = random_ids(length)
        ids = torch.tensor([prompt], device="cuda")
        logits = model(ids).logits[0, -1].float().cpu()
        logits.numpy().astype("<f4").tofile(f"{out_dir}/hf-logits-{i}.f32")
        greedy = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=32,
                                min_new_tokens=32, pad_token_id=0)[0, length:].tolist()
        reference["parity"].append({"prompt": prompt, "greedy": greedy, "logits_file": f"hf-logits-{i}.f32"})
    print("hf: parity references done", flush=True)

    for batch, prompt_len, new_tokens in [(256, 256, 256), (1, 128, 128)]:
        ids = torch.tensor([random_ids(prompt_len) for _ in range(batch)], device="cuda")
        kwargs = dict(attention_mask=torch.ones_like(ids), do_sample=True, temperature=0.9, top_k=40, top_p=0.9,
                      repetition_penalty=1.1, max_new_tokens=new_tokens, min_new_tokens=new_tokens, pad_token_id=0)
        model.generate(ids[:, :16], **{**kwargs, "max_new_tokens": 4, "min_new_tokens": 4})  # warm-up
        torch.cuda.synchronize()
        start = time.time()
        out = model.generate(ids, **kwargs)
        torch.cuda.synchronize()
        seconds = time.time() - start
        generated = batch * (out.shape[1] - prompt_len)
        entry = {"batch": batch, "prompt_tokens": prompt_len, "new_tokens": new_tokens, "seconds": seconds,
                 "tokens_per_s": generated / seconds}
        print(f"hf: batch {batch}, {prompt_len}/{new_tokens}: {generated / seconds:.1f} tokens/s", flush=True)
        if batch == 1:
            weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
            bandwidth = copy_bandwidth()
            entry["floor_tokens_per_s"] = bandwidth / weight_bytes
            entry["floor"] = f"{weight_bytes / 1e9:.2f} GB of weights at {bandwidth / 1e12:.2f} TB/s (device copy)"
        else:
            context = prompt_len + new_tokens // 2
            gemm_ms, attention_ms = decode_step_floor_ms(batch, context)
            entry["floor_tokens_per_s"] = batch / ((gemm_ms + attention_ms) / 1000)
            entry["floor"] = f"GEMMs {gemm_ms:.2f} ms + attention {attention_ms:.2f} ms per step at {context} keys"
        print(f"hf: floor {entry['floor_tokens_per_s']:.1f} tokens/s: {entry['floor']}", flush=True)
        reference["throughput"].append(entry)

with open(f"{out_dir}/hf-reference.json", "w") as f:
    json.dump(reference, f)
