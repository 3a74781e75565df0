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

  /** What sampling one row needs: the sequence's tokens so far (prompt and generated), its parameters, and which draw this is. */
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
  /** The repetition penalty's histories (and its scratch), grown on demand, so held apart from {@link #buffers}. */
  private int historyCapacity;
  private long historyDevice;
  private long scratchDevice;
  private MemorySegment historyHost;

  CudaSampler(CudaDriver driver, CudaKernels kernels, MemorySegment stream, int vocab, int maxRows) {
    this.driver = driver;
    this.kernels = kernels;
    this.stream = stream;
    this.vocab = vocab;
    this.maxRows = maxRows;
    this.hostSampler = new Sampler(vocab);
    this.hostRow = new float[vocab];
    try {
      this.hostRowBuffer = pinned((long) vocab * Float.BYTES);
      long paramBytes = paramBytes(maxRows);
      this.paramsHost = pinned(paramBytes);
      this.paramsDevice = device(paramBytes);
      this.tokensDevice = device((long) maxRows * Integer.BYTES);
      this.tokensHost = pinned((long) maxRows * Integer.BYTES);
      buffers.add(this::freeHistory);
      growHistory(1 << 16);
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
  // temperatures, top-k, top-p (4 bytes each), then history offsets (rows + 1 ints).
  private static long paramBytes(int rows) {
    return 8L * rows + 5L * 4 * rows + 4L * (rows + 1);
  }

  private void growHistory(int entries) {
    freeHistory();
    historyHost = driver.allocHost((long) entries * Integer.BYTES);
    historyDevice = driver.alloc((long) entries * Integer.BYTES);
    scratchDevice = driver.alloc((long) entries * Float.BYTES);
    historyCapacity = entries;
  }

  private void freeHistory() {
    Releases history = new Releases();
    MemorySegment host = historyHost;
    long device = historyDevice;
    long scratch = scratchDevice;
    if (host != null) {
      history.add(() -> driver.freeHost(host));
    }
    if (device != 0) {
      history.add(() -> driver.free(device));
    }
    if (scratch != 0) {
      history.add(() -> driver.free(scratch));
    }
    historyHost = null;
    historyDevice = 0;
    scratchDevice = 0;
    historyCapacity = 0;
    history.close();
  }

  /** Samples row {@code i} of the logits (f32, {@code rows} x vocabulary, on the device) for {@code sequences.get(i)}. */
  int[] sample(long logits, List<Row> sequences) {
    int rows = sequences.size();
    if (rows > maxRows) {
      throw new IllegalArgumentException(rows + " rows exceed the sampler's " + maxRows);
    }
    int historyLength = 0;
    boolean anyPenalty = false;
    for (Row seq : sequences) {
      if (seq.params().repetitionPenalty() != 1.0) {
        historyLength += seq.historyLength();
        anyPenalty = true;
      }
    }
    if (historyLength > historyCapacity) {
      growHistory(Math.max(historyLength, historyCapacity * 2));
    }
    long uniforms = 0;
    long penalties = uniforms + 8L * rows;
    long greedy = penalties + 4L * rows;
    long temperatures = greedy + 4L * rows;
    long topKs = temperatures + 4L * rows;
    long topPs = topKs + 4L * rows;
    long offsets = topPs + 4L * rows;
    int history = 0;
    for (int i = 0; i < rows; i++) {
      Row seq = sequences.get(i);
      SamplingParams p = seq.params();
      boolean onGpu = takesGpuPath(p);
      paramsHost.set(ValueLayout.JAVA_DOUBLE, uniforms + 8L * i, SeededRandom.uniform(p.seed(), seq.step()));
      paramsHost.set(ValueLayout.JAVA_FLOAT, penalties + 4L * i, (float) p.repetitionPenalty());
      // Rows the host samples run the cheap greedy path on the GPU; their result is replaced below.
      paramsHost.set(ValueLayout.JAVA_INT, greedy + 4L * i, p.isGreedy() || !onGpu ? 1 : 0);
      paramsHost.set(ValueLayout.JAVA_FLOAT, temperatures + 4L * i, (float) p.temperature());
      paramsHost.set(ValueLayout.JAVA_INT, topKs + 4L * i, p.topK());
      paramsHost.set(ValueLayout.JAVA_FLOAT, topPs + 4L * i, (float) p.topP());
      paramsHost.set(ValueLayout.JAVA_INT, offsets + 4L * i, history);
      if (p.repetitionPenalty() != 1.0) {
        MemorySegment.copy(seq.history(), 0, historyHost, ValueLayout.JAVA_INT, 4L * history, seq.historyLength());
        history += seq.historyLength();
      }
    }
    paramsHost.set(ValueLayout.JAVA_INT, offsets + 4L * rows, history);
    driver.copyToDeviceAsync(paramsDevice, paramsHost, offsets + 4L * (rows + 1), stream);
    if (anyPenalty) {
      driver.copyToDeviceAsync(historyDevice, historyHost, 4L * history, stream);
      kernels.repetitionPenalty(logits, vocab, historyDevice, paramsDevice + offsets, paramsDevice + penalties, scratchDevice, rows);
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
