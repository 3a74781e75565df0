package dev.beamllama.model.cpu;

import dev.beamllama.model.config.LlamaConfig;
import dev.beamllama.model.engine.CacheSizing;
import dev.beamllama.model.engine.EngineOptions;
import dev.beamllama.model.engine.ModelRunner;
import dev.beamllama.model.engine.Sequence;
import dev.beamllama.model.engine.StepBatch;
import dev.beamllama.model.llama.ForwardTrace;
import dev.beamllama.model.llama.LlamaWeights;
import dev.beamllama.model.safetensors.SafetensorsCheckpoint;
import dev.beamllama.model.sampling.Sampler;
import java.lang.foreign.Arena;
import java.util.Locale;

/**
 * The CPU backend: the forward pass in pure Java on all cores, f32 activations over f32 or bf16
 * weights read in place from the mapped checkpoint, and sampling on the CPU.
 */
public final class CpuModelRunner implements ModelRunner {
  private final SafetensorsCheckpoint checkpoint;
  private final LlamaConfig config;
  private final CpuLlama model;
  private final Parallel pool;
  private final KvCache cache;
  private final int maxSequenceLength;
  private final RunState buffers;
  private final Sampler[] samplers;
  private final float[][] sampleRows;
  private final String weightDtype;
  private final String weightFormat;
  /** Holds the weights' copies: int8 when quantized at load, else those the file left off a cache line ({@link Matrix#of}). */
  private final Arena weightCopies;
  private final boolean bf16Activations;
  private final EngineOptions options;
  private final String batchSizing;

  public CpuModelRunner(SafetensorsCheckpoint checkpoint, LlamaConfig config, EngineOptions asked) {
    EngineOptions options = asked.withSizingDefaults(EngineOptions.CPU_MAX_NUM_SEQS, EngineOptions.CPU_MAX_BATCH_TOKENS);
    this.options = options;
    this.batchSizing = asked.describeSizing(options, "CPU defaults");
    this.checkpoint = checkpoint;
    this.config = config;
    LlamaWeights weights = LlamaWeights.load(checkpoint, config);
    this.weightDtype = weights.layers[0].wq().dtype().name().toLowerCase(java.util.Locale.ROOT);
    this.bf16Activations = options.bf16Activations(weights.layers[0].wq().dtype());
    this.pool = new Parallel(options.threadCount());
    this.weightCopies = Arena.ofShared();
    boolean int8 = options.weights() == EngineOptions.Weights.INT8;
    this.weightFormat = int8 ? "int8 (from " + weightDtype + ")" : weightDtype;
    this.model = new CpuLlama(config, weights, pool, bf16Activations,
        t -> int8 ? Matrix.int8(t, weightCopies, pool) : Matrix.of(t, weightCopies, pool));
    CacheSizing sizing = CacheSizing.of(config, options, bf16Activations, options.plannedKvCacheBytes(false));
    this.cache = new KvCache(config.numLayers(), sizing.blocks(), sizing.blockSize(), config.kvDim(), bf16Activations);
    this.maxSequenceLength = sizing.maxSequenceLength();
    int logitRows = Math.min(options.maxNumSeqs(), options.maxBatchTokens());
    this.buffers = new RunState(config, options.maxBatchTokens(), logitRows, maxSequenceLength, pool, bf16Activations);
    this.samplers = new Sampler[pool.threads()];
    this.sampleRows = new float[pool.threads()][config.vocabSize()];
    for (int i = 0; i < samplers.length; i++) {
      samplers[i] = new Sampler(config.vocabSize());
    }
  }

  @Override
  public EngineOptions options() {
    return options;
  }

  @Override
  public int kvBlocks() {
    return cache.blocks;
  }

  @Override
  public int blockSize() {
    return cache.blockSize;
  }

  @Override
  public int maxSequenceLength() {
    return maxSequenceLength;
  }

  @Override
  public int vocabularySize() {
    return config.vocabSize();
  }

  @Override
  public int[] step(StepBatch batch) {
    if (batch.rows() > buffers.capacity || batch.samples() > buffers.logitCapacity) {
      throw new IllegalArgumentException("step of " + batch.rows() + " tokens and " + batch.samples() + " samples exceeds maxBatchTokens "
          + buffers.capacity + " or maxNumSeqs " + buffers.logitCapacity);
    }
    for (int[] copy : batch.blockCopies()) {
      cache.copyBlock(copy[0], copy[1]);
    }
    model.forward(buffers, batch, cache, null);
    int[] sampled = new int[batch.samples()];
    int vocab = config.vocabSize();
    pool.forEach(batch.samples(), (i, worker) -> {
      Sequence seq = batch.sequence(i);
      float[] logits = sampleRows[worker];
      System.arraycopy(buffers.logits, i * vocab, logits, 0, vocab);
      sampled[i] = samplers[worker].sample(logits, seq.tokens().elements(), seq.length(), seq.params(), seq.generatedCount());
    });
    return sampled;
  }

  @Override
  public float[][] promptLogits(int[] promptIds, ForwardTrace trace) {
    int n = promptIds.length;
    int blockSize = cache.blockSize;
    int rows = Math.min(buffers.capacity, buffers.logitCapacity);
    int vocab = config.vocabSize();
    float[][] out = new float[n][];
    try (KvCache scratch = new KvCache(config.numLayers(), Math.ceilDiv(n, blockSize), blockSize, config.kvDim(), bf16Activations)) {
      for (int start = 0; start < n; start += rows) {
        int count = Math.min(rows, n - start);
        model.forward(buffers, StepBatch.prompt(promptIds, start, count, blockSize), scratch, trace);
        for (int i = 0; i < count; i++) {
          out[start + i] = java.util.Arrays.copyOfRange(buffers.logits, i * vocab, (i + 1) * vocab);
        }
      }
    }
    return out;
  }

  /** Weight bytes a decode step reads, whatever the batch: over the memory bandwidth, the fastest a step can be. */
  public long stepWeightBytes() {
    return model.stepWeightBytes();
  }

  @Override
  public String describe() {
    return "cpu (" + weightFormat + " weights, " + (bf16Activations ? "bf16" : "f32") + " activations, " + pool.threads() + " threads, KV cache "
        + cache.blocks + " blocks x " + cache.blockSize + " tokens in " + cache.format.name().toLowerCase(Locale.ROOT) + "; " + batchSizing + ")";
  }

  @Override
  public void close() {
    pool.close();
    cache.close();
    weightCopies.close();
    checkpoint.close();
  }
}
