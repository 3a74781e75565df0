package dev.beamllama.model.cuda;

import dev.beamllama.model.config.LlamaConfig;
import dev.beamllama.model.engine.CacheSizing;
import dev.beamllama.model.engine.EngineOptions;
import dev.beamllama.model.engine.ModelRunner;
import dev.beamllama.model.engine.Sequence;
import dev.beamllama.model.engine.StepBatch;
import dev.beamllama.model.llama.ForwardTrace;
import dev.beamllama.model.llama.LlamaWeights;
import dev.beamllama.model.safetensors.SafetensorsCheckpoint;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * The CUDA backend: weights in device memory, a paged KV cache sized from the GPU memory left after
 * the weights and activations ({@link EngineOptions#gpuMemoryUtilization()}), the forward pass of
 * {@link CudaLlama} and sampling on the GPU. Scheduling and block bookkeeping stay in the engine,
 * shared with the CPU backend.
 */
public final class CudaModelRunner implements ModelRunner {
  private final SafetensorsCheckpoint checkpoint;
  private final LlamaConfig config;
  /** Everything the runner took on the GPU, released in reverse order by {@link #close()}. */
  private final Releases resources = new Releases();
  private final CudaDriver driver;
  private final MemorySegment stream;
  private final CudaKernels kernels;
  private final CudaLlama model;
  private final CudaSampler sampler;
  private final int maxSequenceLength;
  private final EngineOptions options;
  private final String description;

  /**
   * What this machine offers the CUDA engine: why it cannot run ({@code unavailableReason}, null
   * when it can) and the device it would run on, which may be an emulated one.
   */
  public record Probe(String unavailableReason, String device, boolean emulated) {
    public boolean usable() {
      return unavailableReason == null;
    }
  }

  /** Looks for everything the engine needs: its kernels in this build, the driver, device 0 and cuBLASLt. */
  public static Probe probe() {
    if (!CudaKernels.bundled()) {
      return new Probe("this build has no CUDA kernels (nvcc was not found when it was built)", null, false);
    }
    try {
      CudaDriver driver = CudaDriver.open(0);
      String device;
      boolean emulated;
      try {
        device = driver.deviceName();
        emulated = driver.emulated();
      } finally {
        driver.close();
      }
      CudaLibraries.cublasLt(Arena.global());
      return new Probe(null, device, emulated);
    } catch (CudaUnavailableException | CudaException e) {
      return new Probe(e.getMessage(), null, false);
    } catch (UnsupportedOperationException | IllegalCallerException e) {
      return new Probe("native access is disabled: run the JVM with --enable-native-access=ALL-UNNAMED (" + e.getMessage() + ")", null,
          false);
    }
  }

  public CudaModelRunner(SafetensorsCheckpoint checkpoint, LlamaConfig config, EngineOptions asked) {
    if (asked.weights() != EngineOptions.Weights.CHECKPOINT) {
      throw new IllegalArgumentException("int8 weights are a CPU engine option; the CUDA engine reads the checkpoint's own weights");
    }
    this.checkpoint = checkpoint;
    this.config = config;
    LlamaWeights host = LlamaWeights.load(checkpoint, config);
    boolean bf16 = asked.bf16Activations(host.layers[0].wq().dtype());
    String shapeProblem = CudaKernels.attentionShapeProblem(config.headDim(), config.numHeads() / config.numKvHeads(), bf16);
    if (shapeProblem != null) {
      throw new IllegalArgumentException(shapeProblem);
    }
    this.driver = CudaDriver.open(0);
    resources.add(driver::close);
    try {
      MemorySegment created = driver.createStream();
      resources.add(() -> driver.destroyStream(created));
      this.stream = created;
      CublasLt cublasLt = new CublasLt(driver, stream);
      resources.add(cublasLt::close);
      this.kernels = new CudaKernels(driver, stream, bf16);
      resources.add(kernels::close);
      CudaWeights weights = new CudaWeights(driver, host, config, bf16);
      resources.add(weights::close);
      long[] memory = driver.memoryInfo();
      Plan plan = plan(config, asked, bf16, memory[0], memory[1]);
      this.options = plan.options();
      int logitRows = Math.min(options.maxNumSeqs(), options.maxBatchTokens());
      CudaLlama.Linears linears = CudaLlama.Linears.choose(cublasLt, weights, config, bf16, options.maxBatchTokens(), logitRows);
      CacheSizing sizing = CacheSizing.of(config, options, bf16, plan.cacheBytes());
      this.maxSequenceLength = sizing.maxSequenceLength();
      this.sampler = new CudaSampler(driver, kernels, stream, config.vocabSize(), logitRows);
      resources.add(sampler::close);
      this.model = new CudaLlama(driver, stream, kernels, linears, weights, config, bf16, options.maxBatchTokens(), logitRows,
          sizing.blockSize(), sizing.blocks(), maxSequenceLength, sampler.tokensDevice);
      resources.add(model::close);
      this.description = String.format(Locale.ROOT,
          "cuda (%s%s, PCI %s, compute %d.%d, %s weights %.1f GiB, KV cache %d blocks x %d tokens; %s)",
          driver.emulated() ? "EMULATED on the CPU, for tests only: " : "", driver.deviceName(), driver.pciBusId(),
          driver.computeCapability() / 10, driver.computeCapability() % 10, bf16 ? "bf16" : "f32", weights.bytes / (double) (1L << 30),
          sizing.blocks(), sizing.blockSize(), plan.sizing());
    } catch (RuntimeException e) {
      throw resources.closeAfter(e);
    }
  }

  /**
   * The CUDA default's step tokens are halved down to this while a step's activation buffers would
   * take more than a quarter of the memory the weights leave, which is the KV cache's.
   */
  static final int CUDA_MIN_BATCH_TOKENS = 512;
  /**
   * What a running sequence holds in the cache on average, for the default sequence count: a prompt
   * of a few hundred tokens plus, over its life, half of the default max_new_tokens (1024). Fewer
   * than {@link EngineOptions#CUDA_MAX_NUM_SEQS} when the cache holds less than that many of these:
   * the rest would only be preempted and computed again.
   */
  public static final int TYPICAL_SEQUENCE_TOKENS = 1024;

  /**
   * How the engine is sized on a GPU of {@code totalBytes} with {@code freeBytes} free once the
   * weights are on it: {@code options} with the CUDA defaults resolved, the KV cache's bytes, and
   * the sizing as the load line states it.
   */
  record Plan(EngineOptions options, long cacheBytes, String sizing) {}

  /**
   * Sizes the engine: the utilization fraction of the GPU, less everything allocated so far
   * (weights, this process's and others') and the RoPE tables, is for the activation buffers and the
   * KV cache. {@code maxBatchTokens} and {@code maxNumSeqs} as given, else the CUDA defaults (see
   * {@link EngineOptions#CUDA_MAX_NUM_SEQS}, {@link EngineOptions#CUDA_MAX_BATCH_TOKENS}); the cache takes what the
   * activations leave, a positive {@code kvCacheBytes} capping it. A pure function of its arguments.
   */
  static Plan plan(LlamaConfig config, EngineOptions options, boolean bf16, long freeBytes, long totalBytes) {
    long ropeTables = 2L * config.maxPositionEmbeddings() * (config.headDim() / 2) * Float.BYTES;
    long left = (long) (totalBytes * options.gpuMemoryUtilization()) - (totalBytes - freeBytes) - ropeTables;
    int seqsAtMost = options.maxNumSeqs() > 0 ? options.maxNumSeqs() : EngineOptions.CUDA_MAX_NUM_SEQS;
    int tokens = options.maxBatchTokens();
    String tokensWhy = null;
    if (tokens == 0) {
      tokens = EngineOptions.CUDA_MAX_BATCH_TOKENS;
      while (tokens > CUDA_MIN_BATCH_TOKENS && 4 * activationBytes(config, bf16, tokens, Math.min(seqsAtMost, tokens)) > left) {
        tokens /= 2;
      }
      if (tokens < EngineOptions.CUDA_MAX_BATCH_TOKENS) {
        tokensWhy = String.format(Locale.ROOT, "%,d batch tokens so that a step's activations take at most a quarter of the %s the weights leave",
            tokens, gib(left));
      }
      // Every running sequence decodes a token each step: a step holds at least one for each.
      tokens = Math.max(tokens, seqsAtMost);
    }
    int seqs = options.maxNumSeqs();
    String seqsWhy = null;
    if (seqs == 0) {
      // The most sequences, up to 256 and a step's tokens, of which the cache left beside their
      // buffers holds TYPICAL_SEQUENCE_TOKENS each.
      int typical = Math.min(config.maxPositionEmbeddings(), TYPICAL_SEQUENCE_TOKENS);
      long perToken = CacheSizing.bytesPerBlock(config, 1, bf16);
      seqs = Math.min(EngineOptions.CUDA_MAX_NUM_SEQS, tokens);
      while (seqs > 1
          && cacheBytes(config, options, bf16, left - activationBytes(config, bf16, tokens, seqs)) / perToken < (long) seqs * typical) {
        seqs--;
      }
      long cache = cacheBytes(config, options, bf16, left - activationBytes(config, bf16, tokens, seqs));
      // Below the ceiling the count is what fits beside its own buffers, which the plain quotient would overstate.
      long fit = seqs < Math.min(EngineOptions.CUDA_MAX_NUM_SEQS, tokens) ? seqs : cache / perToken / typical;
      seqsWhy = String.format(Locale.ROOT, "the %s of memory left for the KV cache hold %,d tokens, %,d sequences of %,d", gib(cache),
          cache / perToken, fit, typical);
    }
    EngineOptions resolved = options.withMaxNumSeqs(seqs).withMaxBatchTokens(tokens);
    long cacheBytes = cacheBytes(config, resolved, bf16, left - activationBytes(config, bf16, tokens, Math.min(seqs, tokens)));
    long perBlock = CacheSizing.bytesPerBlock(config, options.blockSize(), bf16);
    // A --kvCacheBytes under one block fails in CacheSizing, which names the flag.
    if (cacheBytes < perBlock && (options.kvCacheBytes() == 0 || cacheBytes != options.kvCacheBytes())) {
      throw new CudaException(String.format(Locale.ROOT,
          "no GPU memory left for the KV cache: %.1f of %.1f GiB free after the weights, --gpuMemoryUtilization %.2f; raise it or use a smaller model",
          freeBytes / (double) (1L << 30), totalBytes / (double) (1L << 30), options.gpuMemoryUtilization()));
    }
    List<String> why = new ArrayList<>();
    why.add("CUDA defaults");
    if (seqsWhy != null) {
      why.add(seqsWhy);
    }
    if (tokensWhy != null) {
      why.add(tokensWhy);
    }
    return new Plan(resolved, cacheBytes, options.describeSizing(resolved, String.join("; ", why)));
  }

  /**
   * Bytes of the activation buffers ({@link CudaLlama}, {@link CudaSampler}) for steps of up to
   * {@code rows} tokens and {@code logitRows} sampled rows.
   */
  static long activationBytes(LlamaConfig config, boolean bf16, int rows, int logitRows) {
    int e = bf16 ? 2 : 4;
    long attentionItem = CudaKernels.AttentionScratch.bytesPerItem(config.numHeads(), config.headDim());
    return (long) rows * e * (4L * config.hiddenSize() + config.queryDim() + 2L * config.kvDim() + config.queryDim()
        + 3L * config.intermediateSize()) + (long) logitRows * config.vocabSize() * (e + 8) + logitRows * attentionItem
        + CudaSampler.scratchBytes(config.vocabSize(), logitRows) + (64L << 20);
  }

  /** The KV cache's bytes out of {@code budget}: {@code kvCacheBytes} when given and smaller, else whole blocks with their extras. */
  private static long cacheBytes(LlamaConfig config, EngineOptions options, boolean bf16, long budget) {
    if (options.kvCacheBytes() > 0 && options.kvCacheBytes() < budget) {
      return options.kvCacheBytes();
    }
    long perBlock = CacheSizing.bytesPerBlock(config, options.blockSize(), bf16);
    long attentionItem = CudaKernels.AttentionScratch.bytesPerItem(config.numHeads(), config.headDim());
    // Each cached token also keeps its id (CudaLlama's tokenAtSlot) and its share of the attention
    // scratch (CudaLlama.attentionItems): a block costs that much more.
    long extra = (long) options.blockSize() * Integer.BYTES + Math.ceilDiv(options.blockSize() * attentionItem, CudaKernels.ATTENTION_CHUNK);
    return Math.max(0, budget) / (perBlock + extra) * perBlock;
  }

  private static String gib(long bytes) {
    return String.format(Locale.ROOT, "%.1f GiB", bytes / (double) (1L << 30));
  }

  @Override
  public EngineOptions options() {
    return options;
  }

  @Override
  public int kvBlocks() {
    return model.cacheBlocks;
  }

  @Override
  public int blockSize() {
    return model.blockSize;
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
    return launch(batch).tokens();
  }

  @Override
  public boolean overlapsSteps() {
    return true;
  }

  /** The step's block copies, forward pass and sampling, queued on the stream; its sampled tokens stay on the device for the next step. */
  @Override
  public Launched launch(StepBatch batch) {
    driver.makeCurrent();
    for (int[] copy : batch.blockCopies()) {
      model.copyBlock(copy[0], copy[1]);
    }
    model.forward(batch);
    List<CudaSampler.Row> rows = new ArrayList<>(batch.samples());
    for (int i = 0; i < batch.samples(); i++) {
      Sequence seq = batch.sequence(i);
      rows.add(new CudaSampler.Row(seq.params(), seq.generatedCount()));
    }
    return sampler.launch(model.logits, model.histories(), rows);
  }

  /** Logits of every prompt position, through the same forward pass on a cache of its own. */
  @Override
  public float[][] promptLogits(int[] promptIds, ForwardTrace trace) {
    driver.makeCurrent();
    // An engine step may still be queued (steps overlap): its inputs' pinned buffer must not be laid out again before it ran.
    driver.synchronize(stream);
    int n = promptIds.length;
    if (n > maxSequenceLength) {
      throw new IllegalArgumentException("prompt of " + n + " tokens exceeds the longest sequence, " + maxSequenceLength);
    }
    int chunkRows = Math.min(model.maxRows, model.maxLogitRows);
    float[][] out = new float[n][];
    int vocab = config.vocabSize();
    try (Releases scratchBuffers = new Releases()) {
      long[][] scratch = model.allocateCache(Math.ceilDiv(n, model.blockSize), scratchBuffers);
      MemorySegment host = driver.allocHost((long) chunkRows * vocab * Float.BYTES);
      scratchBuffers.add(() -> driver.freeHost(host));
      for (int start = 0; start < n; start += chunkRows) {
        int count = Math.min(chunkRows, n - start);
        model.forward(StepBatch.prompt(promptIds, start, count, model.blockSize), scratch[0], scratch[1], trace);
        driver.copyToHostAsync(host, model.logits, (long) count * vocab * Float.BYTES, stream);
        driver.synchronize(stream);
        for (int i = 0; i < count; i++) {
          out[start + i] = new float[vocab];
          MemorySegment.copy(host, ValueLayout.JAVA_FLOAT, (long) i * vocab * Float.BYTES, out[start + i], 0, vocab);
        }
      }
    }
    return out;
  }

  @Override
  public String describe() {
    return description;
  }

  @Override
  public void close() {
    try {
      driver.makeCurrent();
      resources.close();
    } finally {
      checkpoint.close();
    }
  }
}
