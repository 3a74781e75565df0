package dev.beamllama.model.llama;

import dev.beamllama.model.config.LlamaConfig;
import dev.beamllama.model.safetensors.DType;
import dev.beamllama.model.safetensors.SafetensorsCheckpoint;
import dev.beamllama.model.safetensors.Tensor;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/**
 * Every tensor of a Llama checkpoint, checked against the config's shapes. Matrices stay where the
 * checkpoint mapped them (f32 or bf16, read in place); f16 matrices are widened once to f32 in the
 * checkpoint's native arena because the kernels read f32 and bf16 only. Norm vectors are small and
 * become f32 arrays.
 */
public final class LlamaWeights {
  public final Tensor embedTokens;
  public final float[] finalNorm;
  public final Tensor lmHead;
  public final Layer[] layers;

  /** One decoder layer. Matrices are [out, in], as torch's Linear stores them. */
  public record Layer(
      float[] attentionNorm,
      Tensor wq,
      Tensor wk,
      Tensor wv,
      Tensor wo,
      float[] mlpNorm,
      Tensor wGate,
      Tensor wUp,
      Tensor wDown) {}

  private LlamaWeights(Tensor embedTokens, float[] finalNorm, Tensor lmHead, Layer[] layers) {
    this.embedTokens = embedTokens;
    this.finalNorm = finalNorm;
    this.lmHead = lmHead;
    this.layers = layers;
  }

  public static LlamaWeights load(SafetensorsCheckpoint checkpoint, LlamaConfig config) {
    return load(new Loader(checkpoint, true), config);
  }

  /**
   * Checks that every tensor the model needs is there with its shape and a known dtype, without
   * copying any (a job checks its checkpoint at startup, before any worker loads it).
   */
  public static void check(SafetensorsCheckpoint checkpoint, LlamaConfig config) {
    load(new Loader(checkpoint, false), config);
  }

  /**
   * The dtype the projections are computed from, read from the checkpoint's header without loading
   * anything: as stored, f16 widened to f32 (as {@link #load} does), so that a job can tell which
   * activations, and so which KV cache, its engine will have.
   */
  public static DType projectionDtype(SafetensorsCheckpoint checkpoint) {
    DType stored = checkpoint.tensor("model.layers.0.self_attn.q_proj.weight").dtype();
    return stored == DType.F16 ? DType.F32 : stored;
  }

  private static LlamaWeights load(Loader load, LlamaConfig config) {
    int hidden = config.hiddenSize();
    int inter = config.intermediateSize();
    Tensor embed = load.matrix("model.embed_tokens.weight", config.vocabSize(), hidden);
    Tensor lmHead = config.tieWordEmbeddings() ? embed : load.matrix("lm_head.weight", config.vocabSize(), hidden);
    Layer[] layers = new Layer[config.numLayers()];
    for (int i = 0; i < layers.length; i++) {
      String p = "model.layers." + i + ".";
      layers[i] = new Layer(
          load.vector(p + "input_layernorm.weight", hidden),
          load.matrix(p + "self_attn.q_proj.weight", config.queryDim(), hidden),
          load.matrix(p + "self_attn.k_proj.weight", config.kvDim(), hidden),
          load.matrix(p + "self_attn.v_proj.weight", config.kvDim(), hidden),
          load.matrix(p + "self_attn.o_proj.weight", hidden, config.queryDim()),
          load.vector(p + "post_attention_layernorm.weight", hidden),
          load.matrix(p + "mlp.gate_proj.weight", inter, hidden),
          load.matrix(p + "mlp.up_proj.weight", inter, hidden),
          load.matrix(p + "mlp.down_proj.weight", hidden, inter));
    }
    return new LlamaWeights(embed, load.vector("model.norm.weight", hidden), lmHead, layers);
  }

  private record Loader(SafetensorsCheckpoint checkpoint, boolean widen) {
    Tensor matrix(String name, int rows, int columns) {
      Tensor tensor = checkpoint.tensor(name, rows, columns);
      return widen && tensor.dtype() == DType.F16 ? widenToF32(tensor) : tensor;
    }

    float[] vector(String name, int length) {
      return checkpoint.tensor(name, length).toFloatArray();
    }

    private Tensor widenToF32(Tensor tensor) {
      long count = tensor.elementCount();
      MemorySegment f32 = checkpoint.arena().allocate(count * Float.BYTES, 64);
      ValueLayout.OfFloat layout = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
      for (long i = 0; i < count; i++) {
        f32.setAtIndex(layout, i, tensor.get(i));
      }
      return new Tensor(tensor.name(), DType.F32, tensor.shape(), f32);
    }
  }
}
