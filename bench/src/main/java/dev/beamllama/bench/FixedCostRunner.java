package dev.beamllama.bench;

import dev.beamllama.model.engine.EngineOptions;
import dev.beamllama.model.engine.ModelRunner;
import dev.beamllama.model.engine.Sequence;
import dev.beamllama.model.engine.StepBatch;
import dev.beamllama.model.llama.ForwardTrace;
import dev.beamllama.model.sampling.SeededRandom;
import java.util.Arrays;
import java.util.Locale;
import java.util.concurrent.locks.LockSupport;

/**
 * A model runner for benchmarks of feeding, not a model: a step takes {@code stepNanos} plus
 * {@code rowNanos} per row (prompt and decode rows alike), as a GPU whose step time is that line
 * would, and draws for each sample a token that is a pure function of its request's seed and
 * position, below every stop token id, so that every sequence runs to its {@code max_new_tokens}
 * and the same requests give the same tokens however they are batched. The step waits by parking,
 * leaving the cores to whatever feeds the engine, as a GPU would.
 *
 * <p>Its cache holds every sequence at the longest length, so nothing is ever preempted: what
 * empties slots is the feeding alone.
 */
final class FixedCostRunner implements ModelRunner {
  private final EngineOptions options;
  private final int vocabulary;
  private final int tokenBound;
  private final int maxSequenceLength;
  private final long stepNanos;
  private final long rowNanos;

  /**
   * {@code options} resolved as given (their {@code maxNumSeqs} and {@code maxBatchTokens} must be
   * positive); sequences of up to {@code maxSequenceLength} tokens over a vocabulary of
   * {@code vocabulary}; {@code stopTokenIds} are never drawn.
   */
  FixedCostRunner(EngineOptions options, int vocabulary, int maxSequenceLength, int[] stopTokenIds, double stepMs, double rowMs) {
    if (options.maxNumSeqs() < 1 || options.maxBatchTokens() < 1) {
      throw new IllegalArgumentException("the fixed-cost runner needs --maxNumSeqs and --maxBatchTokens given");
    }
    this.options = options;
    this.vocabulary = vocabulary;
    this.tokenBound = Math.min(vocabulary, Arrays.stream(stopTokenIds).min().orElse(vocabulary));
    this.maxSequenceLength = maxSequenceLength;
    this.stepNanos = Math.round(stepMs * 1e6);
    this.rowNanos = Math.round(rowMs * 1e6);
  }

  @Override
  public EngineOptions options() {
    return options;
  }

  @Override
  public int kvBlocks() {
    return options.maxNumSeqs() * Math.ceilDiv(maxSequenceLength, options.blockSize());
  }

  @Override
  public int blockSize() {
    return options.blockSize();
  }

  @Override
  public int maxSequenceLength() {
    return maxSequenceLength;
  }

  @Override
  public int vocabularySize() {
    return vocabulary;
  }

  @Override
  public int[] step(StepBatch batch) {
    long deadline = System.nanoTime() + stepNanos + rowNanos * batch.rows();
    int[] out = new int[batch.samples()];
    for (int i = 0; i < out.length; i++) {
      Sequence seq = batch.sequence(i);
      out[i] = token(seq.params().seed(), seq.length());
    }
    for (long left = deadline - System.nanoTime(); left > 0; left = deadline - System.nanoTime()) {
      LockSupport.parkNanos(left);
    }
    return out;
  }

  /** What {@code steps} steps of {@code rows} rows in all take on this runner. */
  double seconds(long steps, long rows) {
    return (steps * stepNanos + rows * rowNanos) / 1e9;
  }

  /** The token drawn at {@code position} of a sequence seeded {@code seed}. */
  int token(long seed, int position) {
    return (int) Math.floorMod(SeededRandom.mix(seed * 0x9E3779B97F4A7C15L + position), (long) tokenBound);
  }

  @Override
  public float[][] promptLogits(int[] promptIds, ForwardTrace trace) {
    throw new UnsupportedOperationException("the fixed-cost runner computes no logits");
  }

  @Override
  public String describe() {
    return String.format(Locale.ROOT, "fixed-cost runner (no model: %.3f ms a step + %.4f ms a row; %d sequences, %d batch tokens)",
        stepNanos / 1e6, rowNanos / 1e6, options.maxNumSeqs(), options.maxBatchTokens());
  }

  @Override
  public void close() {}
}
