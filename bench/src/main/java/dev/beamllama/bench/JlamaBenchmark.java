package dev.beamllama.bench;

import com.github.tjake.jlama.model.AbstractModel;
import com.github.tjake.jlama.model.ModelSupport;
import com.github.tjake.jlama.model.functions.Generator;
import com.github.tjake.jlama.safetensors.DType;
import com.github.tjake.jlama.safetensors.prompt.PromptContext;
import dev.beamllama.model.ModelDirectory;
import dev.beamllama.model.cpu.CpuModelRunner;
import dev.beamllama.model.engine.EngineOptions;
import dev.beamllama.model.engine.GenerationRequest;
import dev.beamllama.model.engine.GenerationResult;
import dev.beamllama.model.engine.LlmEngine;
import dev.beamllama.model.sampling.SamplingParams;
import java.io.File;
import java.util.Locale;
import java.util.UUID;

/**
 * Our CPU engine against Jlama, batch 1, greedy, the same prompt token ids and the same number of
 * new tokens, on one checkpoint directory, in one JVM. This VM's memory speed drifts by 2x within
 * minutes, so the two engines and the memory bandwidth are measured in alternating rounds and each
 * round gives its own ratios; the medians of those are the result. Jlama runs the way its README
 * runs a model (f32 working memory, int8 working quantization) on the checkpoint's bf16 weights.
 * With {@code int8} ours quantizes its weights at load ({@code --weights=int8}) and the floor counts
 * the int8 bytes; Jlama stays on bf16: 0.8.4's own I8 model quantization fails on a bf16 checkpoint
 * ({@code UnsupportedOperationException: BF16} in its attention), so there is no int8 Jlama to pit it against.
 *
 * <p>Prints one line per round, then {@code median ours D jlama J ratio R bandwidth B floor F}.
 *
 * <p>{@code JlamaBenchmark MODEL_DIR PROMPT NEW_TOKENS ROUNDS [checkpoint|int8]}
 */
public final class JlamaBenchmark {
  private JlamaBenchmark() {}

  public static void main(String[] args) throws Exception {
    File model = new File(args[0]);
    String prompt = args[1];
    int newTokens = Integer.parseInt(args[2]);
    int rounds = Integer.parseInt(args[3]);
    EngineOptions.Weights weights = dev.beamllama.model.config.EnumOption.parse(EngineOptions.Weights.class, "weights", args.length > 4 ? args[4] : "checkpoint");
    int threads = Runtime.getRuntime().availableProcessors();

    AbstractModel jlama = ModelSupport.loadModel(model, DType.F32, DType.I8);
    int[] promptIds = jlama.encodePrompt(PromptContext.of(prompt));
    ModelDirectory dir = ModelDirectory.open(model.getPath());
    EngineOptions options = EngineOptions.defaults().withMaxNumSeqs(1).withThreads(threads).withWeights(weights);
    CpuModelRunner runner = new CpuModelRunner(dir.openWeights(), dir.config(), options);
    long weightBytes = runner.stepWeightBytes();
    try (LlmEngine ours = new LlmEngine(runner, new int[0])) {
      System.err.println("ours: " + ours.runner().describe() + "; prompt " + promptIds.length + " tokens, " + newTokens + " new");
      oursDecode(ours, promptIds, newTokens); // warm-ups
      jlamaDecode(jlama, prompt, promptIds.length, newTokens);
      double[] oursRate = new double[rounds];
      double[] jlamaRate = new double[rounds];
      double[] ratio = new double[rounds];
      double[] bandwidth = new double[rounds];
      double[] floorShare = new double[rounds];
      for (int r = 0; r < rounds; r++) {
        bandwidth[r] = MemoryBandwidth.measure(2L << 30, threads);
        oursRate[r] = oursDecode(ours, promptIds, newTokens);
        jlamaRate[r] = jlamaDecode(jlama, prompt, promptIds.length, newTokens);
        ratio[r] = oursRate[r] / jlamaRate[r];
        floorShare[r] = oursRate[r] / (bandwidth[r] * 1e9 / weightBytes);
        System.out.printf(Locale.ROOT, "round %d: bandwidth %.1f GB/s, ours %.2f tok/s (%.0f%% of floor), jlama %.2f tok/s, ours/jlama %.2fx%n",
            r + 1, bandwidth[r], oursRate[r], 100 * floorShare[r], jlamaRate[r], ratio[r]);
      }
      System.out.printf(Locale.ROOT, "median ours %.2f jlama %.2f ratio %.2f bandwidth %.1f floor %.2f prompt %d%n",
          DecodeBenchmark.median(oursRate), DecodeBenchmark.median(jlamaRate), DecodeBenchmark.median(ratio),
          DecodeBenchmark.median(bandwidth), DecodeBenchmark.median(floorShare), promptIds.length);
    }
    System.exit(0); // Jlama's pools are not daemon threads
  }

  /** Decode tokens/s of one greedy generation: tokens after the first over the time they took. */
  private static double oursDecode(LlmEngine engine, int[] promptIds, int newTokens) {
    GenerationResult r = engine.submit(new GenerationRequest("jlama-peer", promptIds, SamplingParams.greedy(newTokens))).join();
    return (newTokens - 1) / ((r.totalNanos() - r.firstTokenNanos()) / 1e9);
  }

  /** Jlama's own decode timing of one greedy generation (its limit counts the prompt too). */
  private static double jlamaDecode(AbstractModel jlama, String prompt, int promptTokens, int newTokens) {
    Generator.Response response = jlama.generate(UUID.randomUUID(), PromptContext.of(prompt), 0.0f, promptTokens + newTokens, (text, f) -> {});
    return response.generatedTokens / (response.generateTimeMs / 1000.0);
  }
}
