package dev.beamllama.model.cuda;

import dev.beamllama.model.sampling.Sampler;
import dev.beamllama.model.sampling.SamplingParams;
import dev.beamllama.model.sampling.SeededRandom;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.List;

/**
 * Picks each sampling row's next token on the GPU with the CPU {@link Sampler}'s semantics: the
 * repetition penalty over the sequence's history, then greedy argmax, or temperature, top-k, top-p
 * and the inverse-CDF draw with the uniform of (seed, step) computed here. Rows the kernel does not
 * take — top-k off, or more than its candidate limit tied into the top-k — are sampled by the CPU
 * sampler from their penalised logits, so every row gets the same answer either way.
 */
final class CudaSampler implements AutoCloseable {
  private static final int HOST_SAMPLED = -2;

  /**
   * What sampling one row needs: the sequence's tokens so far (prompt and generated; the host path
   * reads them here, the kernels from the device), its parameters, and which draw this is.
   */
  record Row(int[] history, int historyLength, SamplingParams params, int step) {}

  private final CudaDriver driver;
  private final CudaKernels kernels;
  private final MemorySegment stream;
  private final int vocab;
  private final int maxRows;
  private final Sampler hostSampler;
  private final float[] hostRow;
  private final Releases buffers = new Releases();
  private final MemorySegment hostRowBuffer;
  // Per-row parameters: pinned host and device, laid out as one block (see paramBytes()).
  private final MemorySegment paramsHost;
  private final long paramsDevice;
  private final long tokensDevice;
  private final MemorySegment tokensHost;

  CudaSampler(CudaDriver driver, CudaKernels kernels, MemorySegment stream, int vocab, int maxRows) {
    this.driver = driver;
    this.kernels = kernels;
    this.stream = stream;
    this.vocab = vocab;
    this.maxRows = maxRows;
    this.hostSampler = new Sampler(vocab);
    this.hostRow = new float[vocab];
    if (CudaKernels.seenBitmapBytes(vocab) > 48 * 1024) {
      throw new IllegalArgumentException("the GPU's repetition penalty takes a vocabulary of at most " + 48 * 1024 * 8
          + " tokens; this model has " + vocab);
    }
    try {
      this.hostRowBuffer = pinned((long) vocab * Float.BYTES);
      long paramBytes = paramBytes(maxRows);
      this.paramsHost = pinned(paramBytes);
      this.paramsDevice = device(paramBytes);
      this.tokensDevice = device((long) maxRows * Integer.BYTES);
      this.tokensHost = pinned((long) maxRows * Integer.BYTES);
    } catch (RuntimeException e) {
      throw buffers.closeAfter(e);
    }
  }

  private MemorySegment pinned(long bytes) {
    MemorySegment host = driver.allocHost(bytes);
    buffers.add(() -> driver.freeHost(host));
    return host;
  }

  private long device(long bytes) {
    long pointer = driver.alloc(bytes);
    buffers.add(() -> driver.free(pointer));
    return pointer;
  }

  // Layout of the parameter block: uniforms (double) first for alignment, then penalties, greedy,
  // temperatures, top-k, top-p (4 bytes each).
  private static long paramBytes(int rows) {
    return 8L * rows + 5L * 4 * rows;
  }

  /**
   * Samples row {@code i} of the logits (f32, {@code rows} x vocabulary, on the device) for
   * {@code sequences.get(i)}; the repetition penalty reads each sequence's tokens from the device
   * ({@code histories}, the step's), so none is uploaded.
   */
  int[] sample(long logits, CudaKernels.Histories histories, List<Row> sequences) {
    int rows = sequences.size();
    if (rows > maxRows) {
      throw new IllegalArgumentException(rows + " rows exceed the sampler's " + maxRows);
    }
    boolean anyPenalty = false;
    long uniforms = 0;
    long penalties = uniforms + 8L * rows;
    long greedy = penalties + 4L * rows;
    long temperatures = greedy + 4L * rows;
    long topKs = temperatures + 4L * rows;
    long topPs = topKs + 4L * rows;
    for (int i = 0; i < rows; i++) {
      Row seq = sequences.get(i);
      SamplingParams p = seq.params();
      boolean onGpu = takesGpuPath(p);
      anyPenalty |= p.repetitionPenalty() != 1.0;
      paramsHost.set(ValueLayout.JAVA_DOUBLE, uniforms + 8L * i, SeededRandom.uniform(p.seed(), seq.step()));
      paramsHost.set(ValueLayout.JAVA_FLOAT, penalties + 4L * i, (float) p.repetitionPenalty());
      // Rows the host samples run the cheap greedy path on the GPU; their result is replaced below.
      paramsHost.set(ValueLayout.JAVA_INT, greedy + 4L * i, p.isGreedy() || !onGpu ? 1 : 0);
      paramsHost.set(ValueLayout.JAVA_FLOAT, temperatures + 4L * i, (float) p.temperature());
      paramsHost.set(ValueLayout.JAVA_INT, topKs + 4L * i, p.topK());
      paramsHost.set(ValueLayout.JAVA_FLOAT, topPs + 4L * i, (float) p.topP());
    }
    driver.copyToDeviceAsync(paramsDevice, paramsHost, topPs + 4L * rows, stream);
    if (anyPenalty) {
      kernels.repetitionPenalty(logits, vocab, histories, paramsDevice + penalties, rows);
    }
    kernels.sample(tokensDevice, logits, vocab, paramsDevice + greedy, paramsDevice + temperatures, paramsDevice + topKs,
        paramsDevice + topPs, paramsDevice + uniforms, rows);
    driver.copyToHostAsync(tokensHost, tokensDevice, 4L * rows, stream);
    driver.synchronize(stream);

    int[] tokens = new int[rows];
    for (int i = 0; i < rows; i++) {
      Row seq = sequences.get(i);
      SamplingParams p = seq.params();
      int token = tokensHost.getAtIndex(ValueLayout.JAVA_INT, i);
      if (!takesGpuPath(p) || token == HOST_SAMPLED) {
        token = sampleOnHost(logits, i, seq);
      }
      tokens[i] = token;
    }
    return tokens;
  }

  /** Greedy rows and rows with top-k on are sampled by the kernel; top-k off needs a full sort, done by the CPU sampler. */
  private boolean takesGpuPath(SamplingParams p) {
    return p.isGreedy() || (p.topK() >= 1 && p.topK() < vocab);
  }

  /** The CPU sampler on the row's logits, which already carry the repetition penalty. */
  private int sampleOnHost(long logits, int row, Row seq) {
    driver.copyToHost(hostRowBuffer, logits + (long) row * vocab * Float.BYTES, (long) vocab * Float.BYTES);
    MemorySegment.copy(hostRowBuffer, ValueLayout.JAVA_FLOAT, 0, hostRow, 0, vocab);
    SamplingParams withoutPenalty = seq.params().withRepetitionPenalty(1.0);
    return hostSampler.sample(hostRow, seq.history(), seq.historyLength(), withoutPenalty, seq.step());
  }

  @Override
  public void close() {
    buffers.close();
  }
}
