package dev.beamllama.model.engine;

import dev.beamllama.model.safetensors.DType;
import java.io.Serializable;
import java.util.Locale;
import java.util.Objects;

/**
 * Engine sizing. {@code maxNumSeqs} sequences run at once; a step processes at most
 * {@code maxBatchTokens} tokens (prompt chunks plus one per decoding sequence); 0, the default for
 * both, leaves them to the engine (the CPU engine's {@link #CPU_MAX_NUM_SEQS} and
 * {@link #CPU_MAX_BATCH_TOKENS}, the CUDA engine's sized for throughput from the model and the GPU's
 * memory), which resolves them once, at load ({@link ModelRunner#options()}); the KV cache holds
 * {@code kvCacheBytes} in blocks of {@code blockSize} tokens; CPU kernels use {@code threads} (0, the
 * default: every core of the machine the engine runs on, which a launcher cannot know for a cluster).
 * {@code activations} is the precision activations are kept in: {@code AUTO} follows the
 * checkpoint as transformers does (bf16 checkpoints compute in bf16, others in f32).
 *
 * <p>{@code kvCacheBytes} 0 (the default) leaves the cache's size to the engine: the CPU engine
 * takes {@link #CPU_KV_CACHE_BYTES}, the CUDA engine what is left of {@code gpuMemoryUtilization}
 * of the GPU's memory after the weights and activations. A positive value is the CPU engine's
 * cache and the CUDA engine's upper bound.
 *
 * <p>{@code prefixCaching} (on by default): a sequence whose prompt begins with blocks of tokens the
 * cache already holds (another sample of the same prompt, a shared system prompt) takes those
 * blocks instead of computing them again ({@link BlockManager}); its tokens are the same either way.
 */
public record EngineOptions(
    int maxNumSeqs, int maxBatchTokens, int blockSize, long kvCacheBytes, int threads, Precision activations, double gpuMemoryUtilization,
    Weights weights, boolean prefixCaching) implements Serializable {
  /** The CPU engine's sequences and step tokens when {@code maxNumSeqs} and {@code maxBatchTokens} are 0. */
  public static final int CPU_MAX_NUM_SEQS = 16;
  public static final int CPU_MAX_BATCH_TOKENS = 512;
  /**
   * The CUDA engine's, at most (it takes fewer where the GPU's memory is short: {@code
   * CudaModelRunner.plan}): 256 decode rows keep the GPU's matrix units busy (vLLM's default too) and
   * are the largest batch whose rows {@code CublasLt} checks give the same bits as alone; prefill
   * chunks of thousands of rows keep the GEMMs compute-bound, with room beside 256 decode rows.
   */
  public static final int CUDA_MAX_NUM_SEQS = 256;
  public static final int CUDA_MAX_BATCH_TOKENS = 8192;
  public static final int DEFAULT_BLOCK_SIZE = 16;
  public static final double DEFAULT_GPU_MEMORY_UTILIZATION = 0.9;

  /** The CPU engine's KV cache when {@code kvCacheBytes} is 0. */
  public static final long CPU_KV_CACHE_BYTES = 2L << 30;

  public enum Precision {
    AUTO,
    F32,
    BF16
  }

  /**
   * How the CPU engine holds the projection weights. {@code CHECKPOINT}: as stored (transformers'
   * numbers), read in place, or from an aligned copy where the file leaves them off a cache line. {@code INT8}: quantized at load to int8 with an f32 scale per row
   * (per output channel), about half the bytes per decode step (1.5-2x the batch-1 speed on the
   * 1B shape), at the cost of a small error (docs/perf.md); the embedding and norms stay as stored.
   */
  public enum Weights {
    CHECKPOINT,
    INT8
  }

  public EngineOptions {
    Objects.requireNonNull(activations, "activations");
    Objects.requireNonNull(weights, "weights");
    if (maxNumSeqs < 0 || maxBatchTokens < 0 || blockSize < 1 || kvCacheBytes < 0 || threads < 0) {
      throw new IllegalArgumentException("engine options must be positive (sequences, batch tokens, cache bytes and threads: 0 for the "
          + "engine's default): " + maxNumSeqs
          + " seqs, " + maxBatchTokens + " batch tokens, block " + blockSize + ", " + kvCacheBytes + " cache bytes, " + threads + " threads");
    }
    if (!(gpuMemoryUtilization > 0 && gpuMemoryUtilization <= 1)) {
      throw new IllegalArgumentException("gpuMemoryUtilization must be in (0, 1]: " + gpuMemoryUtilization);
    }
  }

  public static EngineOptions defaults() {
    return new EngineOptions(0, 0, DEFAULT_BLOCK_SIZE, 0, 0, Precision.AUTO,
        DEFAULT_GPU_MEMORY_UTILIZATION, Weights.CHECKPOINT, true);
  }

  /**
   * Whether activations and the KV cache are bf16 for a checkpoint whose projections are stored as
   * {@code weights}: {@code AUTO} follows the checkpoint, as transformers does.
   */
  public boolean bf16Activations(DType weights) {
    return switch (activations) {
      case AUTO -> weights == DType.BF16;
      case BF16 -> true;
      case F32 -> false;
    };
  }

  /**
   * The KV cache's bytes as known before an engine loads: {@code kvCacheBytes} when given (the CPU
   * engine's cache, the CUDA engine's upper bound), else the CPU engine's default, or 0 for a CUDA
   * engine, which sizes its cache from the GPU memory it finds.
   */
  public long plannedKvCacheBytes(boolean cuda) {
    return kvCacheBytes > 0 ? kvCacheBytes : cuda ? 0 : CPU_KV_CACHE_BYTES;
  }

  /**
   * These options with the engine's sizing where they leave it to the engine (0): what a runner
   * runs with, and hands the engine ({@link ModelRunner#options()}).
   */
  public EngineOptions withSizingDefaults(int defaultMaxNumSeqs, int defaultMaxBatchTokens) {
    return withMaxNumSeqs(maxNumSeqs > 0 ? maxNumSeqs : defaultMaxNumSeqs)
        .withMaxBatchTokens(maxBatchTokens > 0 ? maxBatchTokens : defaultMaxBatchTokens);
  }

  /**
   * The sizing {@code resolved} runs with, for an engine's load line, each value with where it came
   * from: its flag, or {@code why} the engine's default is what it is.
   */
  public String describeSizing(EngineOptions resolved, String why) {
    return String.format(Locale.ROOT, "%,d sequences, %,d batch tokens (%s)", resolved.maxNumSeqs, resolved.maxBatchTokens,
        maxNumSeqs > 0 && maxBatchTokens > 0 ? "--maxNumSeqs and --maxBatchTokens as given"
            : (maxNumSeqs > 0 ? "--maxNumSeqs as given; " : maxBatchTokens > 0 ? "--maxBatchTokens as given; " : "") + why);
  }

  /** The CPU engine's threads on this machine: {@code threads}, or every core when it is 0. */
  public int threadCount() {
    return threads > 0 ? threads : Runtime.getRuntime().availableProcessors();
  }

  public EngineOptions withMaxNumSeqs(int value) {
    return new EngineOptions(value, maxBatchTokens, blockSize, kvCacheBytes, threads, activations, gpuMemoryUtilization, weights, prefixCaching);
  }

  public EngineOptions withMaxBatchTokens(int value) {
    return new EngineOptions(maxNumSeqs, value, blockSize, kvCacheBytes, threads, activations, gpuMemoryUtilization, weights, prefixCaching);
  }

  public EngineOptions withBlockSize(int value) {
    return new EngineOptions(maxNumSeqs, maxBatchTokens, value, kvCacheBytes, threads, activations, gpuMemoryUtilization, weights, prefixCaching);
  }

  public EngineOptions withKvCacheBytes(long value) {
    return new EngineOptions(maxNumSeqs, maxBatchTokens, blockSize, value, threads, activations, gpuMemoryUtilization, weights, prefixCaching);
  }

  public EngineOptions withThreads(int value) {
    return new EngineOptions(maxNumSeqs, maxBatchTokens, blockSize, kvCacheBytes, value, activations, gpuMemoryUtilization, weights, prefixCaching);
  }

  public EngineOptions withGpuMemoryUtilization(double value) {
    return new EngineOptions(maxNumSeqs, maxBatchTokens, blockSize, kvCacheBytes, threads, activations, value, weights, prefixCaching);
  }

  public EngineOptions withWeights(Weights value) {
    return new EngineOptions(maxNumSeqs, maxBatchTokens, blockSize, kvCacheBytes, threads, activations, gpuMemoryUtilization, value, prefixCaching);
  }

  public EngineOptions withPrefixCaching(boolean value) {
    return new EngineOptions(maxNumSeqs, maxBatchTokens, blockSize, kvCacheBytes, threads, activations, gpuMemoryUtilization, weights, value);
  }

  public EngineOptions withActivations(Precision value) {
    return new EngineOptions(maxNumSeqs, maxBatchTokens, blockSize, kvCacheBytes, threads, value, gpuMemoryUtilization, weights, prefixCaching);
  }
}
