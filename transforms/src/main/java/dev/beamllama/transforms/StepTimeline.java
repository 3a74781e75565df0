package dev.beamllama.transforms;

import java.util.ArrayList;
import java.util.List;

/**
 * Engine steps summed into time buckets from a start instant, for plots of throughput and batch
 * occupancy over a run of any length. There are at most {@link #MAX_BUCKETS} buckets: when a step
 * falls past the last one, neighbours are merged and the width doubles, so memory stays fixed
 * while the resolution follows the run's duration (1 s buckets for a two-minute run, about five
 * minutes for a ten-hour one).
 */
public final class StepTimeline {
  public static final int MAX_BUCKETS = 120;

  private final long startNanos;
  private long widthNanos;
  private final long[] steps = new long[MAX_BUCKETS];
  private final long[] sequences = new long[MAX_BUCKETS];
  private final int[] maxSequences = new int[MAX_BUCKETS];
  private final long[] promptTokens = new long[MAX_BUCKETS];
  private final long[] sampledTokens = new long[MAX_BUCKETS];
  private int used;

  /** Buckets start {@code initialWidthNanos} wide at {@code startNanos} (a {@link System#nanoTime()} value). */
  public StepTimeline(long startNanos, long initialWidthNanos) {
    if (initialWidthNanos <= 0) {
      throw new IllegalArgumentException("bucket width must be positive");
    }
    this.startNanos = startNanos;
    this.widthNanos = initialWidthNanos;
  }

  /** One step that ended at {@code endNanos}. */
  public synchronized void record(long endNanos, int stepSequences, int stepPromptTokens, int stepSampledTokens) {
    long offset = Math.max(0, endNanos - startNanos);
    while (offset / widthNanos >= MAX_BUCKETS) {
      halveResolution();
    }
    int i = (int) (offset / widthNanos);
    steps[i]++;
    sequences[i] += stepSequences;
    maxSequences[i] = Math.max(maxSequences[i], stepSequences);
    promptTokens[i] += stepPromptTokens;
    sampledTokens[i] += stepSampledTokens;
    used = Math.max(used, i + 1);
  }

  private void halveResolution() {
    for (int i = 0; i < MAX_BUCKETS / 2; i++) {
      int a = 2 * i;
      int b = 2 * i + 1;
      steps[i] = steps[a] + steps[b];
      sequences[i] = sequences[a] + sequences[b];
      maxSequences[i] = Math.max(maxSequences[a], maxSequences[b]);
      promptTokens[i] = promptTokens[a] + promptTokens[b];
      sampledTokens[i] = sampledTokens[a] + sampledTokens[b];
    }
    for (int i = MAX_BUCKETS / 2; i < MAX_BUCKETS; i++) {
      steps[i] = 0;
      sequences[i] = 0;
      maxSequences[i] = 0;
      promptTokens[i] = 0;
      sampledTokens[i] = 0;
    }
    used = (used + 1) / 2;
    widthNanos *= 2;
  }

  /** Steps recorded so far. */
  public synchronized long steps() {
    long total = 0;
    for (int i = 0; i < used; i++) {
      total += steps[i];
    }
    return total;
  }

  /**
   * The buckets from the start to the last one with a step, buckets without steps included (the
   * engine was idle or loading). The last bucket ends at {@code endNanos} if that is sooner than its
   * full width, so its rate is over the time it covered.
   */
  public synchronized List<Bucket> buckets(long endNanos) {
    List<Bucket> out = new ArrayList<>(used);
    double width = widthNanos / 1e9;
    for (int i = 0; i < used; i++) {
      double seconds = width;
      if (i == used - 1) {
        long covered = endNanos - startNanos - i * widthNanos;
        seconds = Math.max(1e-3, Math.min(width, covered / 1e9));
      }
      out.add(new Bucket(i * width, seconds, steps[i], steps[i] == 0 ? 0 : (double) sequences[i] / steps[i], maxSequences[i],
          promptTokens[i], sampledTokens[i]));
    }
    return out;
  }

  /** One bucket: when it starts (seconds since the start), how long it covers, and its steps' sums. */
  public record Bucket(double startSeconds, double seconds, long steps, double meanSequences, int maxSequences, long promptTokens,
      long sampledTokens) {
    public double sampledTokensPerSecond() {
      return sampledTokens / seconds;
    }
  }
}
