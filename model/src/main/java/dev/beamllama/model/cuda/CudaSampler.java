package dev.beamllama.model.cuda;

import dev.beamllama.model.engine.ModelRunner;
import dev.beamllama.model.sampling.Sampler;
import dev.beamllama.model.sampling.SamplingParams;
import dev.beamllama.model.sampling.SeededRandom;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.List;

/**
 * Picks each sampling row's next token on the GPU with the CPU {@link Sampler}'s semantics: the
 * repetition penalty over the sequence's history, then greedy argmax, or temperature, top-k, top-p
 * and the inverse-CDF draw with the uniform of (seed, step) computed here. Every row is sampled on
 * the device, top-k off included; the host uploads the parameters and reads back one int per row,
 * and the tokens stay on the device for the next step ({@link #tokensDevice}).
 */
final class CudaSampler implements AutoCloseable {
  /**
   * Rows sampled over the whole vocabulary at once (top-k off, or ties past the top-k kernel's
   * candidate limit): each needs a scratch of five words per token, and a GPU runs about this many
   * such blocks at a time.
   */
  static final int VOCAB_BLOCKS = 128;

  /** What sampling one row needs: its parameters, and which draw this is. */
  record Row(SamplingParams params, int step) {}

  private final CudaDriver driver;
  private final CudaKernels kernels;
  private final MemorySegment stream;
  private final int vocab;
  private final int maxRows;
  private final Releases buffers = new Releases();
  // Per-row parameters on the device, laid out as one block (see paramBytes()).
  private final long paramsDevice;
  /** The last sampled step's tokens on the device: the next step reads pending tokens from here. */
  final long tokensDevice;
  private final long vocabScratch;
  /** The host side of a step's sampling, two by turns: one step's copies may be queued while the next is launched. */
  private final Slot[] slots = new Slot[2];
  private int launches;

  /** Pinned parameters and tokens of one step, and the event after its tokens' copy back. */
  private static final class Slot {
    MemorySegment params;
    MemorySegment tokens;
    MemorySegment copied;
    /** Whether the step that used it last had its tokens taken: it may be filled again. */
    boolean free = true;
  }

  CudaSampler(CudaDriver driver, CudaKernels kernels, MemorySegment stream, int vocab, int maxRows) {
    this.driver = driver;
    this.kernels = kernels;
    this.stream = stream;
    this.vocab = vocab;
    this.maxRows = maxRows;
    if (CudaKernels.seenBitmapBytes(vocab) > 48 * 1024) {
      throw new IllegalArgumentException("the GPU's repetition penalty takes a vocabulary of at most " + 48 * 1024 * 8
          + " tokens; this model has " + vocab);
    }
    try {
      long paramBytes = paramBytes(maxRows);
      this.paramsDevice = device(paramBytes);
      this.tokensDevice = device((long) maxRows * Integer.BYTES);
      this.vocabScratch = device(scratchBytes(vocab, maxRows));
      for (int i = 0; i < slots.length; i++) {
        Slot slot = new Slot();
        slot.params = pinned(paramBytes);
        slot.tokens = pinned((long) maxRows * Integer.BYTES);
        MemorySegment event = driver.createEvent();
        buffers.add(() -> driver.destroyEvent(event));
        slot.copied = event;
        slots[i] = slot;
      }
    } catch (RuntimeException e) {
      throw buffers.closeAfter(e);
    }
  }

  /** Device bytes a sampler of {@code maxRows} rows takes for rows sampled over the whole vocabulary. */
  static long scratchBytes(int vocab, int maxRows) {
    return Math.min(maxRows, VOCAB_BLOCKS) * CudaKernels.sampleVocabScratchWords(vocab) * Integer.BYTES;
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
   * {@code sequences.get(i)}, on the stream after the step's forward pass; the repetition penalty
   * reads each sequence's tokens from the device ({@code histories}, the step's), so none is uploaded.
   * The result waits for the tokens (for a step without samples: for the step).
   */
  ModelRunner.Launched launch(long logits, CudaKernels.Histories histories, List<Row> sequences) {
    int rows = sequences.size();
    if (rows > maxRows) {
      throw new IllegalArgumentException(rows + " rows exceed the sampler's " + maxRows);
    }
    Slot slot = slots[launches & 1];
    if (!slot.free) {
      throw new IllegalStateException("a step was launched while two launched steps' tokens were not taken");
    }
    launches++;
    if (rows > 0) {
      sample(slot.params, slot.tokens, logits, histories, sequences);
    }
    driver.recordEvent(slot.copied, stream);
    slot.free = false; // only once queued: a launch that fails leaves it free, and the next one says what failed
    return () -> {
      try {
        driver.makeCurrent();
        driver.synchronizeEvent(slot.copied);
        int[] tokens = new int[rows];
        MemorySegment.copy(slot.tokens, ValueLayout.JAVA_INT, 0, tokens, 0, rows);
        return tokens;
      } finally {
        slot.free = true; // also after a failure: the next launch must say what failed, not that a slot is busy
      }
    };
  }

  /** The penalty and sampling kernels of {@code sequences}' rows, their parameters from {@code paramsHost}, tokens back to {@code tokensHost}. */
  private void sample(MemorySegment paramsHost, MemorySegment tokensHost, long logits, CudaKernels.Histories histories, List<Row> sequences) {
    int rows = sequences.size();
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
      anyPenalty |= p.repetitionPenalty() != 1.0;
      paramsHost.set(ValueLayout.JAVA_DOUBLE, uniforms + 8L * i, SeededRandom.uniform(p.seed(), seq.step()));
      paramsHost.set(ValueLayout.JAVA_FLOAT, penalties + 4L * i, (float) p.repetitionPenalty());
      paramsHost.set(ValueLayout.JAVA_INT, greedy + 4L * i, p.isGreedy() ? 1 : 0);
      paramsHost.set(ValueLayout.JAVA_FLOAT, temperatures + 4L * i, (float) p.temperature());
      paramsHost.set(ValueLayout.JAVA_INT, topKs + 4L * i, p.topK());
      paramsHost.set(ValueLayout.JAVA_FLOAT, topPs + 4L * i, (float) p.topP());
    }
    driver.copyToDeviceAsync(paramsDevice, paramsHost, topPs + 4L * rows, stream);
    if (anyPenalty) {
      kernels.repetitionPenalty(logits, vocab, histories, paramsDevice + penalties, rows);
    }
    kernels.sample(tokensDevice, logits, vocab, paramsDevice + greedy, paramsDevice + temperatures, paramsDevice + topKs,
        paramsDevice + topPs, paramsDevice + uniforms, rows, vocabScratch, VOCAB_BLOCKS);
    driver.copyToHostAsync(tokensHost, tokensDevice, 4L * rows, stream);
  }

  @Override
  public void close() {
    buffers.close();
  }
}
