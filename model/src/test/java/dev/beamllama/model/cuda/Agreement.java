package dev.beamllama.model.cuda;

import java.util.Locale;

/**
 * How far a device result is from its CPU reference: the largest absolute error, the largest
 * distance in bf16 units in the last place, and the first element outside the tolerance. An
 * element passes when it is within {@code maxUlps} bf16 ulps of the reference or within
 * {@code absolute} of it (values near zero, where ulps mean little).
 */
public record Agreement(int count, double maxError, long maxUlps, int firstBad, float firstBadGot, float firstBadWant) {

  /** Elementwise comparison of {@code got} with {@code want} over their first {@code count} values. */
  public static Agreement of(float[] got, float[] want, int count, long maxUlps, double absolute) {
    double maxError = 0;
    long worstUlps = 0;
    int firstBad = -1;
    for (int i = 0; i < count; i++) {
      double error = Math.abs((double) got[i] - want[i]);
      long ulps = bf16Ulps(got[i], want[i]);
      if (Double.isNaN(error)) {
        error = Double.POSITIVE_INFINITY;
      }
      maxError = Math.max(maxError, error);
      worstUlps = Math.max(worstUlps, ulps);
      if (firstBad < 0 && ulps > maxUlps && !(error <= absolute)) {
        firstBad = i;
      }
    }
    return new Agreement(count, maxError, worstUlps, firstBad, firstBad < 0 ? 0 : got[firstBad], firstBad < 0 ? 0 : want[firstBad]);
  }

  /** As {@link #of}, with a bound of its own for each element: {@code |got - want| <= bound[i]} passes. */
  public static Agreement bounded(float[] got, float[] want, float[] bound, int count) {
    double maxError = 0;
    long worstUlps = 0;
    int firstBad = -1;
    for (int i = 0; i < count; i++) {
      double error = Math.abs((double) got[i] - want[i]);
      error = Double.isNaN(error) ? Double.POSITIVE_INFINITY : error;
      maxError = Math.max(maxError, error);
      worstUlps = Math.max(worstUlps, bf16Ulps(got[i], want[i]));
      if (firstBad < 0 && !(error <= bound[i])) {
        firstBad = i;
      }
    }
    return new Agreement(count, maxError, worstUlps, firstBad, firstBad < 0 ? 0 : got[firstBad], firstBad < 0 ? 0 : want[firstBad]);
  }

  /**
   * Bitwise equality over {@code count} values (kernels that only move data, results that must not
   * depend on the batch): every bit of the float, not only its bf16 part.
   */
  public static Agreement exact(float[] got, float[] want, int count) {
    Agreement close = of(got, want, count, 0, -1);
    for (int i = 0; i < count; i++) {
      if (Float.floatToRawIntBits(got[i]) != Float.floatToRawIntBits(want[i])) {
        return new Agreement(count, close.maxError(), close.maxUlps(), i, got[i], want[i]);
      }
    }
    return close;
  }

  public boolean pass() {
    return firstBad < 0;
  }

  /**
   * The distance between two floats in bf16 ulps: how many bf16 values lie between their bf16
   * roundings, measured on the floats' order (NaN is infinitely far).
   */
  static long bf16Ulps(float a, float b) {
    if (Float.isNaN(a) || Float.isNaN(b)) {
      return Float.isNaN(a) && Float.isNaN(b) ? 0 : Long.MAX_VALUE;
    }
    return Math.abs(order(a) - order(b));
  }

  private static long order(float v) {
    int bits = Float.floatToRawIntBits(v) >> 16; // bf16 precision, sign kept
    return bits >= 0 ? bits : (long) (bits & 0x7fff) * -1;
  }

  @Override
  public String toString() {
    String worst = String.format(Locale.ROOT, "max error %.3g, %d bf16 ulps over %d values", maxError, maxUlps, count);
    return pass() ? worst : worst + String.format(Locale.ROOT, "; first bad [%d]: %s, want %s", firstBad, firstBadGot, firstBadWant);
  }
}
