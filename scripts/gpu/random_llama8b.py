"""The random-weight checkpoint of the Llama-3-8B shape that scripts/gpu-check works on, written
with transformers (bf16, save_pretrained) on the GPU machine: hf_reference.py's reference model, and
the model of the job `scripts/gpu-check --job` runs. The same seed gives the same weights.

    python3 random_llama8b.py CHECKPOINT_DIR
"""
import sys
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM

CONFIG = LlamaConfig(
    vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
    num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=8192, rope_theta=500000.0,
    rms_norm_eps=1e-5, bos_token_id=128000, eos_token_id=[128001, 128009], tie_word_embeddings=False)


def write(checkpoint):
    """Writes the checkpoint and returns the model, on the GPU, in eval mode."""
    torch.manual_seed(0)
    t0 = time.time()
    with torch.device("cuda"):
        model = LlamaForCausalLM(CONFIG).to(torch.bfloat16)
    model.eval()
    model.generation_config.eos_token_id = [128001, 128009]
    model.save_pretrained(checkpoint)
    print(f"hf: wrote {checkpoint} in {time.time() - t0:.1f} s", flush=True)
    return model


if __name__ == "__main__":
    write(sys.argv[1])
