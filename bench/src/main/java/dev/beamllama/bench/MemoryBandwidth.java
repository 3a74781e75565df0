package dev.beamllama.bench;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * The machine's memory read bandwidth as a decode step sees it: every core streaming its share of
 * a buffer much larger than the caches, summed with the Vector API. Best of several passes, in GB/s
 * (10^9 bytes), printed as the last line.
 *
 * <p>{@code MemoryBandwidth [GiB] [threads]}
 */
public final class MemoryBandwidth {
  private static final VectorSpecies<Float> SPECIES = FloatVector.SPECIES_PREFERRED;

  private MemoryBandwidth() {}

  public static void main(String[] args) throws Exception {
    long bytes = (long) (args.length > 0 ? Double.parseDouble(args[0]) : 2) << 30;
    int threads = args.length > 1 ? Integer.parseInt(args[1]) : Runtime.getRuntime().availableProcessors();
    System.out.printf(Locale.ROOT, "%.1f%n", measure(bytes, threads));
  }

  public static double measure(long bytes, int threads) throws Exception {
    try (Arena arena = Arena.ofShared(); ExecutorService pool = Executors.newFixedThreadPool(threads)) {
      MemorySegment buffer = arena.allocate(bytes, 64);
      buffer.fill((byte) 1);
      long slice = bytes / threads / SPECIES.vectorByteSize() * SPECIES.vectorByteSize();
      double best = 0;
      for (int pass = 0; pass < 6; pass++) {
        List<Future<Float>> parts = new ArrayList<>();
        long start = System.nanoTime();
        for (int t = 0; t < threads; t++) {
          MemorySegment part = buffer.asSlice(t * slice, slice);
          parts.add(pool.submit(() -> sum(part)));
        }
        float total = 0;
        for (Future<Float> f : parts) {
          total += f.get();
        }
        double seconds = (System.nanoTime() - start) / 1e9;
        if (pass > 0 && !Float.isNaN(total)) { // the first pass warms up the JIT and the page tables
          best = Math.max(best, slice * threads / seconds / 1e9);
        }
      }
      return best;
    }
  }

  private static float sum(MemorySegment part) {
    FloatVector a = FloatVector.zero(SPECIES);
    FloatVector b = FloatVector.zero(SPECIES);
    long step = SPECIES.vectorByteSize();
    for (long at = 0; at + 2 * step <= part.byteSize(); at += 2 * step) {
      a = a.add(FloatVector.fromMemorySegment(SPECIES, part, at, ByteOrder.LITTLE_ENDIAN));
      b = b.add(FloatVector.fromMemorySegment(SPECIES, part, at + step, ByteOrder.LITTLE_ENDIAN));
    }
    return a.add(b).reduceLanes(VectorOperators.ADD);
  }
}
