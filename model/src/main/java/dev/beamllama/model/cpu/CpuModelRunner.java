package dev.beamllama.model.cpu;

import dev.beamllama.model.IntList;
import dev.beamllama.model.config.LlamaConfig;
import dev.beamllama.model.engine.EngineOptions;
import dev.beamllama.model.engine.ModelRunner;
import dev.beamllama.model.engine.ScheduledChunk;
import dev.beamllama.model.engine.Sequence;
import dev.beamllama.model.llama.ForwardTrace;
import dev.beamllama.model.llama.LlamaWeights;
import dev.beamllama.model.safetensors.DType;
import dev.beamllama.model.safetensors.SafetensorsCheckpoint;
import dev.beamllama.model.sampling.Sampler;
import java.lang.foreign.Arena;
import java.util.List;
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
  private final CpuLlama.Buffers buffers;
  private final Sampler[] samplers;
  private final float[][] sampleRows;
  private final String weightDtype;
  private final String weightFormat;
  /** Holds int8 copies of the weights when they are quantized at load. */
  private final Arena quantized;
  private final boolean bf16Activations;

  public CpuModelRunner(SafetensorsCheckpoint checkpoint, LlamaConfig config, EngineOptions options) {
    this.checkpoint = checkpoint;
    this.config = config;
    LlamaWeights weights = LlamaWeights.load(checkpoint, config);
    this.weightDtype = weights.layers[0].wq().dtype().name().toLowerCase(java.util.Locale.ROOT);
    this.bf16Activations = switch (options.activations()) {
      case AUTO -> weights.layers[0].wq().dtype() == DType.BF16;
      case BF16 -> true;
      case F32 -> false;
    };
    this.pool = new Parallel(options.threads());
    this.quantized = Arena.ofShared();
    boolean int8 = options.weights() == EngineOptions.Weights.INT8;
    this.weightFormat = int8 ? "int8 (from " + weightDtype + ")" : weightDtype;
    this.model = new CpuLlama(config, weights, pool, bf16Activations,
        t -> int8 ? Matrix.int8(t, quantized, pool) : Matrix.of(t));
    long cacheBytes = options.kvCacheBytes() > 0 ? options.kvCacheBytes() : EngineOptions.CPU_KV_CACHE_BYTES;
    long bytesPerBlock = KvCache.bytesPerToken(config.numLayers(), config.kvDim(), bf16Activations) * options.blockSize();
    long wantedBlocks = Math.ceilDiv((long) options.maxNumSeqs() * config.maxPositionEmbeddings(), options.blockSize());
    int blocks = (int) Math.max(1, Math.min(wantedBlocks, Math.min(Integer.MAX_VALUE, cacheBytes / bytesPerBlock)));
    this.cache = new KvCache(config.numLayers(), blocks, options.blockSize(), config.kvDim(), bf16Activations);
    this.maxSequenceLength = (int) Math.min(config.maxPositionEmbeddings(), (long) blocks * options.blockSize());
    int logitRows = Math.min(options.maxNumSeqs(), options.maxBatchTokens());
    this.buffers = new CpuLlama.Buffers(config, options.maxBatchTokens(), logitRows, maxSequenceLength, pool, bf16Activations);
    this.samplers = new Sampler[pool.threads()];
    this.sampleRows = new float[pool.threads()][config.vocabSize()];
    for (int i = 0; i < samplers.length; i++) {
      samplers[i] = new Sampler(config.vocabSize());
    }
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
  public int[] step(List<ScheduledChunk> chunks) {
    int rows = 0;
    for (ScheduledChunk chunk : chunks) {
      rows += chunk.length();
    }
    if (rows > buffers.capacity) {
      throw new IllegalArgumentException("step of " + rows + " tokens exceeds maxBatchTokens " + buffers.capacity);
    }
    int[] tokens = new int[rows];
    int[] positions = new int[rows];
    IntList[] tables = new IntList[rows];
    int[] logitRows = new int[chunks.size()];
    int[] logitOwner = new int[chunks.size()];
    int logitCount = 0;
    int row = 0;
    for (int c = 0; c < chunks.size(); c++) {
      ScheduledChunk chunk = chunks.get(c);
      Sequence seq = chunk.sequence();
      for (int i = 0; i < chunk.length(); i++, row++) {
        tokens[row] = seq.tokens().get(chunk.start() + i);
        positions[row] = chunk.start() + i;
        tables[row] = seq.blockTable();
      }
      if (chunk.samples()) {
        logitRows[logitCount] = row - 1;
        logitOwner[logitCount++] = c;
      }
    }
    if (logitCount > buffers.logitCapacity) {
      throw new IllegalArgumentException(logitCount + " sequences in one step exceed maxNumSeqs " + buffers.logitCapacity);
    }
    model.forward(buffers, rows, tokens, positions, tables, cache, logitRows, logitCount, null);
    int[] sampled = new int[chunks.size()];
    java.util.Arrays.fill(sampled, -1);
    int vocab = config.vocabSize();
    pool.forEach(logitCount, (i, worker) -> {
      Sequence seq = chunks.get(logitOwner[i]).sequence();
      float[] logits = sampleRows[worker];
      System.arraycopy(buffers.logits, i * vocab, logits, 0, vocab);
      sampled[logitOwner[i]] = samplers[worker].sample(logits, seq.tokens().elements(), seq.length(), seq.params(), seq.generatedCount());
    });
    return sampled;
  }

  @Override
  public float[][] promptLogits(int[] promptIds, ForwardTrace trace) {
    int n = promptIds.length;
    int blockSize = cache.blockSize;
    int rows = Math.min(buffers.capacity, buffers.logitCapacity);
    float[][] out = new float[n][];
    try (KvCache scratch = new KvCache(config.numLayers(), (n + blockSize - 1) / blockSize, blockSize, config.kvDim(), bf16Activations)) {
      IntList table = new IntList();
      for (int b = 0; b < scratch.blocks; b++) {
        table.add(b);
      }
      for (int start = 0; start < n; start += rows) {
        int count = Math.min(rows, n - start);
        int[] tokens = new int[count];
        int[] positions = new int[count];
        IntList[] tables = new IntList[count];
        int[] logitRows = new int[count];
        for (int i = 0; i < count; i++) {
          tokens[i] = promptIds[start + i];
          positions[i] = start + i;
          tables[i] = table;
          logitRows[i] = i;
        }
        model.forward(buffers, count, tokens, positions, tables, scratch, logitRows, count, trace);
        int vocab = config.vocabSize();
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
        + cache.blocks + " blocks x " + cache.blockSize + " tokens in " + cache.format.name().toLowerCase(Locale.ROOT) + ")";
  }

  @Override
  public void close() {
    pool.close();
    cache.close();
    quantized.close();
    checkpoint.close();
  }
}
