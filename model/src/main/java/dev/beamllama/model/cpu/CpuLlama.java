package dev.beamllama.model.cpu;

import dev.beamllama.model.engine.StepBatch;
import dev.beamllama.model.config.LlamaConfig;
import dev.beamllama.model.llama.ForwardTrace;
import dev.beamllama.model.llama.ForwardTrace.Stage;
import dev.beamllama.model.llama.LlamaWeights;
import dev.beamllama.model.llama.Rope;
import dev.beamllama.model.safetensors.Tensor;
import java.util.function.Function;

/**
 * The Llama forward pass on the CPU, over a batch of token rows that may belong to different
 * sequences at different positions (prompt chunks and decode tokens together). Each row attends to
 * its own sequence's cached keys and values through that sequence's block table.
 *
 * <p>Activations are f32. With {@code bf16} they are rounded to bf16 wherever a bf16 model in
 * transformers stores a tensor (after each projection, norm, rotation, activation and residual
 * add), so a bf16 checkpoint gives transformers' numbers, not more precise ones.
 */
final class CpuLlama {
  private final LlamaConfig config;
  private final LlamaWeights weights;
  private final Rope rope;
  private final Parallel pool;
  private final float attentionScale;
  private final boolean bf16;
  /** Each layer's projections as the kernels read them. */
  private final Projections[] projections;
  private final Matrix lmHead;
  private final Attention attention = new Attention();

  /** One layer's weight matrices; {@code qkv} = {wq, wk, wv}, projected together in one parallel section. */
  private record Projections(Matrix[] qkv, Matrix wo, Matrix gate, Matrix up, Matrix down) {}

  /** {@code toMatrix} gives each projection (and the LM head) the form the kernels read: in place, or int8. */
  CpuLlama(LlamaConfig config, LlamaWeights weights, Parallel pool, boolean bf16, Function<Tensor, Matrix> toMatrix) {
    this.bf16 = bf16;
    this.config = config;
    this.weights = weights;
    this.rope = new Rope(config.rope(), config.headDim(), bf16);
    this.pool = pool;
    this.attentionScale = (float) Math.pow(config.headDim(), -0.5);
    this.projections = new Projections[weights.layers.length];
    for (int layer = 0; layer < weights.layers.length; layer++) {
      LlamaWeights.Layer w = weights.layers[layer];
      projections[layer] = new Projections(new Matrix[] {toMatrix.apply(w.wq()), toMatrix.apply(w.wk()), toMatrix.apply(w.wv())},
          toMatrix.apply(w.wo()), toMatrix.apply(w.wGate()), toMatrix.apply(w.wUp()), toMatrix.apply(w.wDown()));
    }
    this.lmHead = toMatrix.apply(weights.lmHead);
  }

  /**
   * Weight bytes one decode step reads: every projection and the LM head once, in the form the
   * kernels read them (bf16, f32, or int8 with its scales). The embedding (one row per token) and the
   * norm vectors are left out: together under 0.1% of a step.
   */
  long stepWeightBytes() {
    long bytes = lmHead.bytes();
    for (Projections p : projections) {
      for (Matrix m : p.qkv()) {
        bytes += m.bytes();
      }
      bytes += p.wo().bytes() + p.gate().bytes() + p.up().bytes() + p.down().bytes();
    }
    return bytes;
  }

  LlamaConfig config() {
    return config;
  }

  /**
   * Computes the rows of {@code batch}, writes each row's key and value into its slot of
   * {@code cache}, and the logits of the batch's sample rows into {@code b.logits} (row-major, in
   * that order). {@code trace}, when not null, sees each stage.
   */
  void forward(RunState b, StepBatch batch, KvCache cache, ForwardTrace trace) {
    int rows = batch.rows();
    int[] tokens = batch.tokens();
    int[] positions = batch.positions();
    int[] slots = batch.slots();
    int[] logitRows = batch.sampleRows();
    int logitCount = batch.samples();
    int hidden = config.hiddenSize();
    int half = config.headDim() / 2;
    for (int t = 0; t < rows; t++) {
      weights.embedTokens.readRow(tokens[t], b.x, t * hidden);
      rope.angles(positions[t], b.cos, b.sin, t * half);
    }
    trace(trace, -1, Stage.EMBEDDING, b.x, rows, hidden);
    for (int layer = 0; layer < weights.layers.length; layer++) {
      LlamaWeights.Layer w = weights.layers[layer];
      Projections p = projections[layer];
      normRows(b.x, w.attentionNorm(), b.xn, rows);
      trace(trace, layer, Stage.ATTENTION_NORM, b.xn, rows, hidden);
      b.matmul.apply(b.xn, rows, p.qkv(), b.qkv);
      trace(trace, layer, Stage.Q, b.q, rows, config.queryDim());
      trace(trace, layer, Stage.K, b.k, rows, config.kvDim());
      trace(trace, layer, Stage.V, b.v, rows, config.kvDim());
      for (int t = 0; t < rows; t++) {
        rope.rotate(b.q, t * config.queryDim(), config.numHeads(), config.headDim(), b.cos, b.sin, t * half);
        rope.rotate(b.k, t * config.kvDim(), config.numKvHeads(), config.headDim(), b.cos, b.sin, t * half);
        cache.store(layer, (long) slots[t] * cache.kvDim, b.k, b.v, t * config.kvDim());
      }
      trace(trace, layer, Stage.Q_ROTATED, b.q, rows, config.queryDim());
      trace(trace, layer, Stage.K_ROTATED, b.k, rows, config.kvDim());
      attention.apply(b, batch, cache, layer);
      trace(trace, layer, Stage.ATTENTION, b.attention, rows, config.queryDim());
      b.matmul.apply(b.attention, rows, p.wo(), b.projected);
      trace(trace, layer, Stage.ATTENTION_OUTPUT, b.projected, rows, hidden);
      Kernels.addInPlace(b.x, b.projected, rows * hidden, bf16);
      trace(trace, layer, Stage.ATTENTION_RESIDUAL, b.x, rows, hidden);
      normRows(b.x, w.mlpNorm(), b.xn, rows);
      trace(trace, layer, Stage.MLP_NORM, b.xn, rows, hidden);
      b.swiglu.apply(b.xn, rows, p.gate(), p.up(), b.gate, b.up);
      trace(trace, layer, Stage.MLP_ACTIVATION, b.gate, rows, config.intermediateSize());
      b.matmul.apply(b.gate, rows, p.down(), b.projected);
      trace(trace, layer, Stage.MLP_OUTPUT, b.projected, rows, hidden);
      Kernels.addInPlace(b.x, b.projected, rows * hidden, bf16);
      trace(trace, layer, Stage.MLP_RESIDUAL, b.x, rows, hidden);
    }
    for (int i = 0; i < logitCount; i++) {
      Kernels.rmsNorm(b.x, logitRows[i] * hidden, weights.finalNorm, config.rmsNormEps(), b.xn, i * hidden, hidden, bf16);
    }
    trace(trace, -1, Stage.FINAL_NORM, b.xn, logitCount, hidden);
    b.matmul.apply(b.xn, logitCount, lmHead, b.logits);
    trace(trace, -1, Stage.LOGITS, b.logits, logitCount, config.vocabSize());
  }

  private static void trace(ForwardTrace trace, int layer, Stage stage, float[] values, int rows, int width) {
    if (trace != null) {
      trace.stage(layer, stage, values, rows, width);
    }
  }

  private void normRows(float[] x, float[] weight, float[] out, int rows) {
    int hidden = config.hiddenSize();
    for (int t = 0; t < rows; t++) {
      Kernels.rmsNorm(x, t * hidden, weight, config.rmsNormEps(), out, t * hidden, hidden, bf16);
    }
  }

  /**
   * Causal grouped-query attention: one task per (row, key/value head), over positions 0..position
   * of its sequence, for the query heads that share that key/value head. The block table is walked
   * once per task, into the cache offset of each position's key and value, and every head's scores,
   * softmax and weighted sum still get the same operations in the same order. Like the matmuls, one
   * instance is reused for every section, with its operands in fields.
   */
  private final class Attention implements Parallel.Task {
    private RunState b;
    private int[] positions;
    private int[] rowSequence;
    private int[] blockTables;
    private int maxBlocks;
    private KvCache cache;
    private Matrix keys;
    private Matrix values;
    private Kernels.Reads reads;

    void apply(RunState b, StepBatch batch, KvCache cache, int layer) {
      this.b = b;
      this.positions = batch.positions();
      this.rowSequence = batch.rowSequence();
      this.blockTables = batch.blockTables();
      this.maxBlocks = batch.maxBlocks();
      int rows = batch.rows();
      this.cache = cache;
      this.keys = cache.keys[layer];
      this.values = cache.values[layer];
      this.reads = Kernels.reads(cache.format);
      pool.forEach(rows * config.numKvHeads(), this);
    }

    @Override
    public void run(int task, int worker) {
      int kvHeads = config.numKvHeads();
      int group = config.numHeads() / kvHeads;
      int headDim = config.headDim();
      int kvDim = cache.kvDim;
      int blockSize = cache.blockSize;
      int t = task / kvHeads;
      int kvHead = task % kvHeads;
      int qOff = t * config.queryDim() + kvHead * group * headDim;
      int length = positions[t] + 1;
      int table = rowSequence[t] * maxBlocks;
      float[] scores = b.scores[worker];
      float[] sums = b.sums[worker];
      long[] cached = b.cached[worker];
      float[] lanes = b.lanes[worker];
      for (int start = 0; start < length; start += blockSize) {
        long at = cache.index(blockTables[table + start / blockSize], 0) + (long) kvHead * headDim;
        for (int j = start; j < Math.min(length, start + blockSize); j++, at += kvDim) {
          cached[j] = at;
        }
      }
      for (int j = 0; j < length; j++) {
        int g = 0;
        for (; g + 4 <= group; g += 4) {
          reads.dot4(b.q, qOff + g * headDim, keys, cached[j], headDim, lanes, attentionScale, scores, g * length + j, length);
        }
        for (; g < group; g++) {
          scores[g * length + j] = reads.dot(b.q, qOff + g * headDim, keys, cached[j], headDim, lanes) * attentionScale;
        }
      }
      for (int g = 0; g < group; g++) {
        sums[g] = Kernels.softmaxNumerators(scores, g * length, length, lanes);
      }
      // As torch's fused attention: unnormalised weights (bf16 in a bf16 model) times values,
      // accumulated in f32, divided by the f32 sum at the end.
      for (int g = 0; g < group; g++) {
        if (bf16) {
          Kernels.roundToBf16(scores, g * length, (g + 1) * length);
        }
        reads.weightedSum(scores, g * length, values, cached, length, b.attention, qOff + g * headDim, headDim);
      }
      for (int g = 0; g < group; g++) {
        for (int d = qOff + g * headDim; d < qOff + (g + 1) * headDim; d++) {
          b.attention[d] = Kernels.round(b.attention[d] / sums[g], bf16);
        }
      }
    }
  }
}
