package dev.beamllama.model.cpu;

import dev.beamllama.model.config.LlamaConfig;

/**
 * The CPU forward pass's working memory (llama2.c's RunState): activation buffers for up to
 * {@code capacity} rows, per-worker attention scratch, and the parallel sections that fill them,
 * allocated once per engine and reused every step.
 */
final class RunState {
  final int capacity;
  final float[] x;
  final float[] xn;
  final float[] q;
  final float[] k;
  final float[] v;
  /** {@code {q, k, v}}: the outputs of the fused query/key/value projection. */
  final float[][] qkv;
  final float[] attention;
  final float[] projected;
  final float[] gate;
  final float[] up;
  final float[] cos;
  final float[] sin;
  final float[] logits;
  final int logitCapacity;
  /** Per worker: attention scores of one query-head group, head g's at {@code [g * length, (g + 1) * length)}. */
  final float[][] scores;
  /** Per worker: each head of the group's softmax denominator. */
  final float[][] sums;
  /** Per worker: where each position's key (and value) vector for the task's head starts in the cache. */
  final long[][] cached;
  final float[][] lanes;
  final Matmul matmul;
  final Kernels.Swiglu swiglu;

  RunState(LlamaConfig c, int capacity, int logitCapacity, int maxSequenceLength, Parallel pool, boolean bf16) {
    this.capacity = capacity;
    this.logitCapacity = logitCapacity;
    x = new float[capacity * c.hiddenSize()];
    xn = new float[capacity * c.hiddenSize()];
    q = new float[capacity * c.queryDim()];
    k = new float[capacity * c.kvDim()];
    v = new float[capacity * c.kvDim()];
    qkv = new float[][] {q, k, v};
    attention = new float[capacity * c.queryDim()];
    projected = new float[capacity * c.hiddenSize()];
    gate = new float[capacity * c.intermediateSize()];
    up = new float[capacity * c.intermediateSize()];
    cos = new float[capacity * c.headDim() / 2];
    sin = new float[capacity * c.headDim() / 2];
    logits = new float[logitCapacity * c.vocabSize()];
    int group = c.numHeads() / c.numKvHeads();
    scores = new float[pool.threads()][group * maxSequenceLength];
    sums = new float[pool.threads()][group];
    cached = new long[pool.threads()][maxSequenceLength];
    lanes = new float[pool.threads()][Kernels.SCRATCH_FLOATS];
    matmul = new Matmul(pool, lanes, bf16);
    swiglu = new Kernels.Swiglu(pool, lanes, bf16);
  }
}
