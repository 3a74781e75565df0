package dev.beamllama.pipeline.report;

import java.util.Arrays;

/**
 * Counts of non-negative integers (token counts) in a fixed number of equal bins. The range is not
 * known in advance, so the bins start 1 wide at the first value; a value outside them moves them
 * if the values seen still fit, else doubles their width. Bins always start at multiples of their
 * width, so each old bin falls whole into a new one: memory is fixed whatever the number of
 * records, the counts stay exact per bin, and the bins cover the values seen at the finest width
 * that holds them (prompts of 240 to 310 tokens get bins of 4 tokens, not 20 empty bins from 0).
 */
public final class Histogram {
  private final long[] counts;
  private long low;
  private long width = 1;
  private long total;
  private long sum;
  private long min = Long.MAX_VALUE;
  private long max = Long.MIN_VALUE;

  public Histogram(int bins) {
    if (bins < 2) {
      throw new IllegalArgumentException("at least 2 bins: " + bins);
    }
    this.counts = new long[bins];
  }

  public void add(long value) {
    if (value < 0) {
      throw new IllegalArgumentException("negative value " + value);
    }
    if (total == 0) {
      low = value;
    }
    while (value < low || value >= low + counts.length * width) {
      long from = Math.floorDiv(Math.min(value, min()), width) * width;
      if ((Math.max(value, max()) - from) / width < counts.length) {
        moveTo(from);
      } else {
        widen();
      }
    }
    counts[(int) ((value - low) / width)]++;
    total++;
    sum += value;
    min = Math.min(min, value);
    max = Math.max(max, value);
  }

  /** Bins of the same width starting at {@code newLow}, a multiple of it, which all values seen fit. */
  private void moveTo(long newLow) {
    long[] old = counts.clone();
    Arrays.fill(counts, 0);
    for (int i = 0; i < old.length; i++) {
      if (old[i] != 0) {
        counts[(int) ((low + i * width - newLow) / width)] = old[i];
      }
    }
    low = newLow;
  }

  /** Doubles the width, the first bin starting at a multiple of it; every old bin lies inside one new bin. */
  private void widen() {
    long newWidth = width * 2;
    long newLow = Math.floorDiv(low, newWidth) * newWidth;
    long[] old = counts.clone();
    Arrays.fill(counts, 0);
    for (int i = 0; i < old.length; i++) {
      if (old[i] != 0) {
        counts[(int) ((low + i * width - newLow) / newWidth)] += old[i];
      }
    }
    low = newLow;
    width = newWidth;
  }

  /** Where bin 0 starts: bin {@code i} covers {@code [low() + i * binWidth(), low() + (i + 1) * binWidth())}. */
  public long low() {
    return low;
  }

  public long binWidth() {
    return width;
  }

  /** Bins from the first to the last non-empty one (0 when empty). */
  public int usedBins() {
    return total == 0 ? 0 : (int) ((max - low) / width) + 1;
  }

  public long count(int bin) {
    return counts[bin];
  }

  public long total() {
    return total;
  }

  public long sum() {
    return sum;
  }

  /** The smallest value added; 0 when empty. */
  public long min() {
    return total == 0 ? 0 : min;
  }

  /** The largest value added; 0 when empty. */
  public long max() {
    return total == 0 ? 0 : max;
  }

  public double mean() {
    return total == 0 ? 0 : (double) sum / total;
  }

  /** The label of bin {@code i}: its value range, or the value when bins are 1 wide. */
  public String label(int bin) {
    long start = low + bin * width;
    return width == 1 ? Long.toString(start) : start + "-" + (start + width - 1);
  }
}
