package dev.beamllama.bench;

import dev.beamllama.model.ModelDirectory;
import dev.beamllama.model.cpu.CpuModelRunner;
import dev.beamllama.model.engine.EngineOptions;
import dev.beamllama.model.engine.GenerationRequest;
import dev.beamllama.model.engine.GenerationResult;
import dev.beamllama.model.engine.LlmEngine;
import dev.beamllama.model.sampling.SamplingParams;
import dev.beamllama.model.sampling.SeededRandom;
import java.lang.management.ManagementFactory;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.CompletableFuture;

/**
 * CPU engine throughput: for each batch size, that many requests with the model card's sampling
 * run together; decode tokens/s is the tokens generated after every sequence had its first token,
 * divided by the time that took. Stop tokens are ignored so every sequence runs its full length.
 * Prints a Markdown table of medians, with the heap bytes allocated per generated token (the
 * kernels allocate nothing per token but the parallel sections' small bookkeeping) and, when batch 1
 * is among the sizes, each size's decode speed over batch 1's in the same round (median of the
 * rounds).
 *
 * <p>Several weight formats ({@code --weights checkpoint,int8}) run one after the other in the same
 * JVM, one table each: that is how a JVM with two engines runs, and the allocation column shows
 * whether the second format's kernels still compile as well as the first's (a shared kernel once
 * made the second ~7x slower, docs/perf.md).
 *
 * <p>{@code scripts/bench-decode --model (DIR | ORG/NAME) [--batch 1,8] [--prompt-tokens 64] [--new-tokens 128] [--runs 3] [--weights checkpoint|int8[,...]]}
 */
public final class DecodeBenchmark {
  private static final com.sun.management.ThreadMXBean THREADS = (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();

  private DecodeBenchmark() {}

  public static void main(String[] argv) {
    String model = null;
    int[] batches = {1, 8};
    int promptTokens = 64;
    int newTokens = 128;
    int runs = 3;
    int threads = Runtime.getRuntime().availableProcessors();
    List<EngineOptions.Weights> formats = List.of(EngineOptions.Weights.CHECKPOINT);
    for (int i = 0; i < argv.length; i += 2) {
      String value = i + 1 < argv.length ? argv[i + 1] : null;
      if (value == null) {
        usage("missing value for " + argv[i]);
      }
      switch (argv[i]) {
        case "--model" -> model = value;
        case "--batch" -> batches = Arrays.stream(value.split(",")).mapToInt(s -> Integer.parseInt(s.trim())).toArray();
        case "--prompt-tokens" -> promptTokens = Integer.parseInt(value);
        case "--new-tokens" -> newTokens = Integer.parseInt(value);
        case "--runs" -> runs = Integer.parseInt(value);
        case "--threads" -> threads = Integer.parseInt(value);
        case "--weights" -> formats = Arrays.stream(value.split(",")).map(s -> dev.beamllama.model.config.EnumOption.parse(EngineOptions.Weights.class, "weights", s)).toList();
        default -> usage("unknown option " + argv[i]);
      }
    }
    if (model == null) {
      usage("--model is required");
    }
    ModelDirectory dir = ModelDirectory.open(model);
    System.out.printf(Locale.ROOT, "model %s, %d threads, prompt %d tokens, %d new tokens, median of %d runs%n",
        dir.path(), threads, promptTokens, newTokens, runs);
    for (EngineOptions.Weights weights : formats) {
      if (formats.size() > 1) {
        System.out.printf(Locale.ROOT, "%nweights %s%n", weights.name().toLowerCase(Locale.ROOT));
      }
      benchmark(dir, weights, batches, promptTokens, newTokens, runs, threads);
    }
  }

  /** One engine with {@code weights}: warm-up, then the rounds, then its table. */
  private static void benchmark(ModelDirectory dir, EngineOptions.Weights weights, int[] batches, int promptTokens, int newTokens, int runs, int threads) {
    int maxBatch = Arrays.stream(batches).max().orElse(1);
    // Without the prefix cache: every run repeats the warm-up's prompts, which it would otherwise take
    // from the cache instead of computing (prefill measured 13x too fast).
    EngineOptions options = EngineOptions.defaults().withMaxNumSeqs(maxBatch).withThreads(threads).withWeights(weights)
        .withMaxBatchTokens(Math.max(512, maxBatch * promptTokens)).withPrefixCaching(false);
    System.out.println("| batch | decode tokens/s | ms per decode step | prefill tokens/s | heap bytes allocated per token | decode vs batch 1 (median of the rounds' ratios) |");
    System.out.println("|---|---|---|---|---|---|");
    try (LlmEngine engine = new LlmEngine(new CpuModelRunner(dir.openWeights(), dir.config(), options), new int[0])) {
      System.err.println("engine: " + engine.runner().describe());
      for (int batch : batches) {
        run(engine, batch, promptTokens, newTokens, dir.config().vocabSize()); // warm-up
      }
      // Rounds of every batch size in turn rather than all runs of one size and then the next: this
      // VM's memory speed changes from minute to minute, and a ratio between batch sizes should
      // compare runs from the same minutes.
      double[][][] results = new double[batches.length][runs][];
      for (int r = 0; r < runs; r++) {
        for (int b = 0; b < batches.length; b++) {
          results[b][r] = run(engine, batches[b], promptTokens, newTokens, dir.config().vocabSize());
        }
      }
      int single = Arrays.stream(batches).boxed().toList().indexOf(1);
      for (int b = 0; b < batches.length; b++) {
        double tokensPerSecond = median(column(results[b], 0));
        String ratio = "-";
        if (single >= 0) {
          double[] ratios = new double[runs];
          for (int r = 0; r < runs; r++) {
            ratios[r] = results[b][r][0] / results[single][r][0];
          }
          ratio = String.format(Locale.ROOT, "%.2fx", median(ratios));
        }
        System.out.printf(Locale.ROOT, "| %d | %.1f | %.2f | %.0f | %.0f | %s |%n", batches[b], tokensPerSecond, 1000.0 * batches[b] / tokensPerSecond,
            median(column(results[b], 1)), median(column(results[b], 2)), ratio);
      }
    }
  }

  static double[] column(double[][] rows, int c) {
    return Arrays.stream(rows).mapToDouble(row -> row[c]).toArray();
  }

  /**
   * Returns {decode tokens/s, prefill tokens/s, heap bytes allocated per generated token} of one
   * batch; the bytes are every thread's, requests and results included, from submit to the end.
   */
  private static double[] run(LlmEngine engine, int batch, int promptTokens, int newTokens, int vocab) {
    long allocatedBefore = THREADS.getTotalThreadAllocatedBytes();
    List<CompletableFuture<GenerationResult>> futures = new ArrayList<>();
    for (int b = 0; b < batch; b++) {
      int[] prompt = new int[promptTokens];
      for (int i = 0; i < promptTokens; i++) {
        prompt[i] = (int) (SeededRandom.uniform(b, i) * Math.min(vocab, 100_000));
      }
      futures.add(engine.submit(new GenerationRequest("bench-" + b, prompt, SamplingParams.modelCard(b).withMaxNewTokens(newTokens))));
    }
    long[] times = lastFirstTokenAndEnd(futures);
    long lastFirstToken = times[0];
    long end = times[1];
    double allocatedPerToken = (THREADS.getTotalThreadAllocatedBytes() - allocatedBefore) / (double) (batch * newTokens);
    double decodeSeconds = (end - lastFirstToken) / 1e9;
    return new double[] {batch * (newTokens - 1) / decodeSeconds, batch * (double) promptTokens / (lastFirstToken / 1e9), allocatedPerToken};
  }

  /**
   * Waits for a batch's results: the latest first token and the latest end, in nanoseconds from each
   * request's submission (decode is the time between the two, prefill the time to the first).
   */
  public static long[] lastFirstTokenAndEnd(List<CompletableFuture<GenerationResult>> futures) {
    long lastFirstToken = 0;
    long end = 0;
    for (CompletableFuture<GenerationResult> f : futures) {
      GenerationResult r = f.join();
      lastFirstToken = Math.max(lastFirstToken, r.firstTokenNanos());
      end = Math.max(end, r.totalNanos());
    }
    return new long[] {lastFirstToken, end};
  }

  /** The median of {@code values} (the mean of the middle two for an even count); the benchmarks' one summary. */
  public static double median(double[] values) {
    double[] sorted = values.clone();
    Arrays.sort(sorted);
    int n = sorted.length;
    return n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
  }

  private static void usage(String problem) {
    System.err.println("bench-decode: " + problem);
    System.err.println("usage: bench-decode --model (DIR | ORG/NAME) [--batch 1,8] [--prompt-tokens 64] [--new-tokens 128] [--runs 3] [--threads N] [--weights checkpoint|int8[,...]]");
    System.exit(2);
  }
}
