"""Hugging Face transformers' side of scripts/gpu-check, run on the GPU machine.

Writes a random-weight checkpoint of the Llama-3-8B shape (bf16, save_pretrained), then on the
same weights: the last-position logits and a greedy continuation for a few prompts (the parity
reference), and the model card's way of generating, timed, for the two throughput workloads.
Everything lands in OUT_DIR/hf-reference.json and OUT_DIR/hf-logits-<i>.f32 (raw little-endian f32).
"""
import json
import sys
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM

checkpoint, out_dir = sys.argv[1], sys.argv[2]
torch.manual_seed(0)
config = LlamaConfig(
    vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
    num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=8192, rope_theta=500000.0,
    rms_norm_eps=1e-5, bos_token_id=128000, eos_token_id=[128001, 128009], tie_word_embeddings=False)
t0 = time.time()
with torch.device("cuda"):
    model = LlamaForCausalLM(config).to(torch.bfloat16)
model.eval()
model.generation_config.eos_token_id = [128001, 128009]
model.save_pretrained(checkpoint)
print(f"hf: wrote {checkpoint} in {time.time() - t0:.1f} s", flush=True)

generator = torch.Generator().manual_seed(1)
def random_ids(n):
    return torch.randint(1000, 120000, (n,), generator=generator).tolist()

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
        reference["throughput"].append({"batch": batch, "prompt_tokens": prompt_len, "new_tokens": new_tokens,
                                        "seconds": seconds, "tokens_per_s": generated / seconds})
        print(f"hf: batch {batch}, {prompt_len}/{new_tokens}: {generated / seconds:.1f} tokens/s", flush=True)

with open(f"{out_dir}/hf-reference.json", "w") as f:
    json.dump(reference, f)
