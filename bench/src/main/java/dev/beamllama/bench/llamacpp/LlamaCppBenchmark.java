package dev.beamllama.bench.llamacpp;

import dev.beamllama.bench.DecodeBenchmark;
import dev.beamllama.model.ModelDirectory;
import dev.beamllama.model.cpu.CpuModelRunner;
import dev.beamllama.model.engine.EngineOptions;
import dev.beamllama.model.engine.GenerationRequest;
import dev.beamllama.model.engine.GenerationResult;
import dev.beamllama.model.engine.LlmEngine;
import dev.beamllama.model.sampling.SamplingParams;
import dev.beamllama.model.sampling.SeededRandom;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.CompletableFuture;

/**
 * Our CPU engine against llama.cpp on the same weights, in one JVM: for one format pair (our bf16
 * checkpoint against the GGUF bf16 file, or our {@code --weights=int8} against GGUF Q8_0), greedy
 * decode at batch 1, 8 and 32 (prompts of 16 token ids each, the same ids for both) and the prefill
 * of one 512-token prompt. This VM's speed drifts by 2-4x within the hour, so every round runs every
 * workload on both engines back to back (the order alternating from round to round) and each round
 * gives its own ratio ours / llama.cpp; the table reports the ranges and the median of the ratios.
 * Both run on the same number of threads. Decode tokens/s counts the tokens after each sequence's
 * first, over the time from the last first token to the end (as {@link DecodeBenchmark} does).
 *
 * <p>{@code LlamaCppBenchmark MODEL_DIR LLAMACPP_DIR GGUF checkpoint|int8 ROUNDS NEW_TOKENS}
 */
public final class LlamaCppBenchmark {
  private static final int PROMPT_TOKENS = 16;
  private static final int PREFILL_TOKENS = 512;
  private static final int[] BATCHES = {1, 8, 32};

  private LlamaCppBenchmark() {}

  public static void main(String[] args) {
    if (args.length != 6) {
      System.err.println("usage: LlamaCppBenchmark MODEL_DIR LLAMACPP_DIR GGUF checkpoint|int8 ROUNDS NEW_TOKENS");
      System.exit(2);
    }
    ModelDirectory dir = ModelDirectory.open(args[0]);
    Path llamacpp = Path.of(args[1]);
    Path gguf = Path.of(args[2]);
    EngineOptions.Weights weights = dev.beamllama.model.config.EnumOption.parse(EngineOptions.Weights.class, "weights", args[3]);
    int rounds = Integer.parseInt(args[4]);
    int newTokens = Integer.parseInt(args[5]);
    if (!Files.isRegularFile(gguf)) {
      throw new IllegalArgumentException(gguf + " is missing: write it with GgufWriter");
    }
    int threads = Runtime.getRuntime().availableProcessors();
    int maxBatch = Arrays.stream(BATCHES).max().orElseThrow();
    // Without the prefix cache: every round repeats the prompts, which ours would otherwise take from
    // the cache (llama.cpp's context is cleared before each generation).
    EngineOptions options = EngineOptions.defaults().withMaxNumSeqs(maxBatch).withThreads(threads).withWeights(weights)
        .withMaxBatchTokens(Math.max(PREFILL_TOKENS, maxBatch * PROMPT_TOKENS)).withPrefixCaching(false);
    List<Workload> workloads = new ArrayList<>();
    for (int batch : BATCHES) {
      workloads.add(new Workload("decode tokens/s, batch " + batch, prompts(batch, PROMPT_TOKENS, dir.config().vocabSize()), newTokens, false));
    }
    workloads.add(new Workload("prefill tokens/s, " + PREFILL_TOKENS + "-token prompt", prompts(1, PREFILL_TOKENS, dir.config().vocabSize()), 1, true));
    try (LlmEngine ours = new LlmEngine(new CpuModelRunner(dir.openWeights(), dir.config(), options), new int[0]);
        LlamaCppPeer peer = new LlamaCppPeer(llamacpp, gguf, threads, maxBatch, PREFILL_TOKENS + newTokens, PREFILL_TOKENS)) {
      System.out.printf(Locale.ROOT, "ours: %s%nllama.cpp: %s, %d threads%n", ours.runner().describe(), gguf.getFileName(), threads);
      for (Workload w : workloads) { // warm-up
        w.ours(ours);
        w.peer(peer);
      }
      double[][] oursRate = new double[workloads.size()][rounds];
      double[][] peerRate = new double[workloads.size()][rounds];
      for (int r = 0; r < rounds; r++) {
        for (int w = 0; w < workloads.size(); w++) {
          if (r % 2 == 0) {
            oursRate[w][r] = workloads.get(w).ours(ours);
            peerRate[w][r] = workloads.get(w).peer(peer);
          } else {
            peerRate[w][r] = workloads.get(w).peer(peer);
            oursRate[w][r] = workloads.get(w).ours(ours);
          }
        }
        StringBuilder line = new StringBuilder("round " + (r + 1) + ":");
        for (int w = 0; w < workloads.size(); w++) {
          line.append(String.format(Locale.ROOT, " %s ours %.1f llama.cpp %.1f (%.2fx);", workloads.get(w).name, oursRate[w][r], peerRate[w][r],
              oursRate[w][r] / peerRate[w][r]));
        }
        System.out.println(line);
      }
      System.out.println("| measure | ours | llama.cpp | ours / llama.cpp, per round | median ratio |");
      System.out.println("|---|---|---|---|---|");
      for (int w = 0; w < workloads.size(); w++) {
        double[] ratios = new double[rounds];
        for (int r = 0; r < rounds; r++) {
          ratios[r] = oursRate[w][r] / peerRate[w][r];
        }
        System.out.printf(Locale.ROOT, "| %s | %s | %s | %s | %.2fx |%n", workloads.get(w).name, range(oursRate[w]), range(peerRate[w]),
            String.join(" ", Arrays.stream(ratios).mapToObj(x -> String.format(Locale.ROOT, "%.2f", x)).toList()), DecodeBenchmark.median(ratios));
      }
    }
  }

  /** The same prompts for both engines: {@code batch} of {@code length} ids, as DecodeBenchmark draws them. */
  private static int[][] prompts(int batch, int length, int vocab) {
    int[][] prompts = new int[batch][length];
    for (int b = 0; b < batch; b++) {
      for (int i = 0; i < length; i++) {
        prompts[b][i] = (int) (SeededRandom.uniform(b, i) * Math.min(vocab, 100_000));
      }
    }
    return prompts;
  }

  private record Workload(String name, int[][] prompts, int newTokens, boolean prefill) {
    double ours(LlmEngine engine) {
      List<CompletableFuture<GenerationResult>> futures = new ArrayList<>();
      for (int b = 0; b < prompts.length; b++) {
        futures.add(engine.submit(new GenerationRequest("bench-" + b, prompts[b], SamplingParams.greedy(newTokens))));
      }
      long[] times = DecodeBenchmark.lastFirstTokenAndEnd(futures);
      return prefill ? prompts.length * prompts[0].length / (times[0] / 1e9)
          : prompts.length * (newTokens - 1) / ((times[1] - times[0]) / 1e9);
    }

    double peer(LlamaCppPeer peer) {
      LlamaCppPeer.Generation g = peer.generate(prompts, newTokens);
      return prefill ? prompts.length * prompts[0].length / (g.prefillNanos() / 1e9)
          : prompts.length * (newTokens - 1) / (g.decodeNanos() / 1e9);
    }
  }

  private static String range(double[] values) {
    double min = Arrays.stream(values).min().orElseThrow();
    double max = Arrays.stream(values).max().orElseThrow();
    return String.format(Locale.ROOT, "%.1f-%.1f", min, max);
  }
}
