package dev.beamllama.model.sampling;

/**
 * Counter-based random numbers: the draw for a request's n-th generated token is a pure function of
 * (seed, n). Nothing is carried between steps, so batching, preemption and recomputation cannot
 * change a request's draws, and a GPU kernel can compute the same value.
 */
public final class SeededRandom {
  private SeededRandom() {}

  /** A uniform double in [0, 1) for draw {@code counter} of {@code seed}. */
  public static double uniform(long seed, long counter) {
    long z = mix(mix(seed) + (counter + 1) * 0x9E3779B97F4A7C15L);
    return (z >>> 11) * 0x1.0p-53;
  }

  /** SplitMix64's finaliser: a bijective scramble of 64 bits. */
  public static long mix(long z) {
    z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
    z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
    return z ^ (z >>> 31);
  }
}
