package dev.beamllama.transforms;

import dev.beamllama.model.sampling.SeededRandom;
import java.nio.charset.StandardCharsets;

/**
 * The seed of each sample. A record's own {@code seed} seeds sample 0, and sample i uses seed + i.
 * Otherwise the seed is derived from (job seed, id, sample index) alone, so it does not depend on
 * file order, parallelism or retries, and the same job gives the same outputs.
 */
public final class SampleSeeds {
  private SampleSeeds() {}

  public static long seed(long jobSeed, String id, int sampleIndex, Long recordSeed) {
    if (recordSeed != null) {
      return recordSeed + sampleIndex;
    }
    long h = SeededRandom.mix(jobSeed ^ 0x5DEECE66DL);
    for (byte b : id.getBytes(StandardCharsets.UTF_8)) {
      h = SeededRandom.mix(h ^ (b & 0xff));
    }
    return SeededRandom.mix(h + sampleIndex) >>> 1; // non-negative: easier to pass on a command line
  }
}
