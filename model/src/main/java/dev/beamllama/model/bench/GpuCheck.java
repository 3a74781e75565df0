package dev.beamllama.model.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.beamllama.model.Engines;
import dev.beamllama.model.ModelDirectory;
import dev.beamllama.model.cuda.CudaModelRunner;
import dev.beamllama.model.engine.EngineOptions;
import dev.beamllama.model.engine.GenerationRequest;
import dev.beamllama.model.engine.GenerationResult;
import dev.beamllama.model.engine.LlmEngine;
import dev.beamllama.model.sampling.Sampler;
import dev.beamllama.model.sampling.SamplingParams;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Random;
import java.util.concurrent.CompletableFuture;

/**
 * The Java side of {@code scripts/gpu-check}, on the GPU machine: (1) the hf-golden parity cases on
 * the CUDA engine, (2) the CUDA engine against transformers on a random-weight Llama-3-8B-shaped
 * checkpoint (logits error, top-1 agreement, greedy tokens), (3) the throughput workloads next to
 * transformers' figures from the same run. Prints a table last; exits 1 when parity fails.
 *
 * <p>{@code GpuCheck GOLDEN_DIR CHECKPOINT_DIR REFERENCE_DIR}
 */
public final class GpuCheck {
  private static final ObjectMapper JSON = new ObjectMapper();
  private final List<String> table = new ArrayList<>();
  private boolean failed;

  public static void main(String[] args) throws Exception {
    if (args.length != 3) {
      System.err.println("usage: GpuCheck GOLDEN_DIR CHECKPOINT_DIR REFERENCE_DIR");
      System.exit(2);
    }
    CudaModelRunner.Probe gpu = CudaModelRunner.probe();
    if (!gpu.usable()) {
      System.err.println("gpu-check: the CUDA engine cannot run here: " + gpu.unavailableReason());
      System.exit(1);
    }
    GpuCheck check = new GpuCheck();
    check.golden(Path.of(args[0]));
    ModelDirectory large = new ModelDirectory(Path.of(args[1]));
    long start = System.nanoTime();
    try (LlmEngine engine = engineWithoutStops(large, gpuOptions())) {
      System.out.printf(Locale.ROOT, "gpu-check: loaded %s in %.1f s: %s%n", large.path(), (System.nanoTime() - start) / 1e9,
          engine.runner().describe());
      check.largeModel(engine, Path.of(args[2]));
      check.throughput(engine, Path.of(args[2]));
    }
    System.out.println();
    System.out.println("| check | result |");
    System.out.println("|---|---|");
    check.table.forEach(System.out::println);
    System.exit(check.failed ? 1 : 0);
  }

  private void row(String check, String result, boolean pass) {
    String line = "| " + check + " | " + result + (pass ? "" : " **FAIL**") + " |";
    System.out.println(line);
    table.add(line);
    failed |= !pass;
  }

  /** (1) Every hf-golden case: prefill logits and greedy continuations, as the CPU engine's parity test. */
  private void golden(Path dir) throws IOException {
    for (String[] set : new String[][] {{"tiny-llama3-expected.json", "tiny-llama3-"}, {"tiny-llama31-ropescaled-expected.json", "tiny-llama31-ropescaled-"}}) {
      JsonNode root = JSON.readTree(dir.resolve(set[0]).toFile());
      for (JsonNode c : root.get("cases")) {
        String checkpoint = set[1] + c.get("dtype").asText();
        boolean bf16 = checkpoint.endsWith("bf16");
        double tolerance = bf16 ? 3e-2 : 1e-4;
        int[] prompt = ints(c.get("prompt"));
        int[] greedy = ints(c.get("greedy_continuation"));
        try (LlmEngine engine = Engines.create(new ModelDirectory(dir.resolve(checkpoint)), Engines.Kind.CUDA, EngineOptions.defaults())) {
          float[][] logits = engine.promptLogits(prompt);
          double worst = 0;
          boolean argmax = true;
          for (int pos = 0; pos < prompt.length; pos++) {
            float[] want = floats(c.get("prefill_logits").get(pos));
            worst = Math.max(worst, relativeL2(logits[pos], want));
            argmax &= Sampler.argmax(want) == Sampler.argmax(logits[pos]);
          }
          row("golden " + checkpoint + " " + prompt.length + "-token prefill", String.format(Locale.ROOT, "rel L2 %.2e (tol %.0e), argmax %s",
              worst, tolerance, argmax ? "same" : "differs"), worst <= tolerance && argmax);
          int[] got = engine.generate(new GenerationRequest("golden", prompt, SamplingParams.greedy(greedy.length))).tokenIds();
          row("golden " + checkpoint + " greedy " + greedy.length, java.util.Arrays.equals(got, greedy) ? "identical"
              : "differs: " + java.util.Arrays.toString(got), java.util.Arrays.equals(got, greedy));
        }
      }
    }
  }

  private static EngineOptions gpuOptions() {
    return EngineOptions.defaults().withMaxNumSeqs(256).withMaxBatchTokens(8192);
  }

  /** An engine that ignores end-of-sequence tokens, so every request generates its full length (as min_new_tokens). */
  private static LlmEngine engineWithoutStops(ModelDirectory model, EngineOptions options) {
    return new LlmEngine(new CudaModelRunner(model.openWeights(), model.config(), options), options, new int[0]);
  }

  /** (2) The 8B-shaped random checkpoint: our logits and greedy tokens against transformers' on the same weights. */
  private void largeModel(LlmEngine engine, Path reference) throws IOException {
    JsonNode ref = JSON.readTree(reference.resolve("hf-reference.json").toFile());
    for (JsonNode c : ref.get("parity")) {
      int[] prompt = ints(c.get("prompt"));
      int[] hfGreedy = ints(c.get("greedy"));
      float[] hfLogits = readFloats(reference.resolve(c.get("logits_file").asText()));
      int[] forced = new int[prompt.length + hfGreedy.length - 1];
      System.arraycopy(prompt, 0, forced, 0, prompt.length);
      System.arraycopy(hfGreedy, 0, forced, prompt.length, hfGreedy.length - 1);
      float[][] logits = engine.promptLogits(forced);
      double error = relativeL2(logits[prompt.length - 1], hfLogits);
      int agree = 0;
      for (int i = 0; i < hfGreedy.length; i++) {
        agree += Sampler.argmax(logits[prompt.length - 1 + i]) == hfGreedy[i] ? 1 : 0;
      }
      int[] ours = engine.generate(new GenerationRequest("parity", prompt, SamplingParams.greedy(hfGreedy.length))).tokenIds();
      int same = 0;
      while (same < ours.length && ours[same] == hfGreedy[same]) {
        same++;
      }
      row("8B random, " + prompt.length + "-token prompt", String.format(Locale.ROOT,
          "last logits rel L2 %.2e, top-1 agreement %d/%d (teacher-forced), greedy identical for %d/%d tokens", error, agree,
          hfGreedy.length, same, hfGreedy.length), error <= 5e-2 && agree >= hfGreedy.length * 0.9);
    }
  }

  /** (3) The workloads, with the model card's sampling, ours next to transformers' from the same run. */
  private void throughput(LlmEngine engine, Path reference) throws IOException {
    JsonNode ref = JSON.readTree(reference.resolve("hf-reference.json").toFile());
    for (JsonNode w : ref.get("throughput")) {
      int batch = w.get("batch").asInt();
      int promptTokens = w.get("prompt_tokens").asInt();
      int newTokens = w.get("new_tokens").asInt();
      run(engine, Math.min(batch, 8), 16, 4, 0); // warm-up
      double tokensPerSecond = run(engine, batch, promptTokens, newTokens, 1);
      double hf = w.get("tokens_per_s").asDouble();
      double target = batch == 1 ? 120 : 14_000;
      row(String.format(Locale.ROOT, "throughput %d prompts, %d in / %d out", batch, promptTokens, newTokens), String.format(Locale.ROOT,
          "ours %.1f tokens/s, transformers %.1f tokens/s (%.1fx), target %.0f", tokensPerSecond, hf, tokensPerSecond / hf, target),
          tokensPerSecond >= target);
    }
  }

  private static double run(LlmEngine engine, int batch, int promptTokens, int newTokens, long seed) {
    Random random = new Random(seed);
    List<CompletableFuture<GenerationResult>> futures = new ArrayList<>();
    long start = System.nanoTime();
    for (int b = 0; b < batch; b++) {
      int[] prompt = new int[promptTokens];
      for (int i = 0; i < promptTokens; i++) {
        prompt[i] = 1000 + random.nextInt(119_000);
      }
      futures.add(engine.submit(new GenerationRequest("w" + b, prompt, SamplingParams.modelCard(seed * 1000 + b).withMaxNewTokens(newTokens))));
    }
    long generated = 0;
    for (CompletableFuture<GenerationResult> f : futures) {
      generated += f.join().completionTokens();
    }
    return generated / ((System.nanoTime() - start) / 1e9);
  }

  private static float[] readFloats(Path file) throws IOException {
    ByteBuffer bytes = ByteBuffer.wrap(Files.readAllBytes(file)).order(ByteOrder.LITTLE_ENDIAN);
    float[] values = new float[bytes.remaining() / Float.BYTES];
    bytes.asFloatBuffer().get(values);
    return values;
  }

  private static int[] ints(JsonNode array) {
    int[] values = new int[array.size()];
    for (int i = 0; i < values.length; i++) {
      values[i] = array.get(i).asInt();
    }
    return values;
  }

  private static float[] floats(JsonNode array) {
    float[] values = new float[array.size()];
    for (int i = 0; i < values.length; i++) {
      values[i] = (float) array.get(i).asDouble();
    }
    return values;
  }

  private static double relativeL2(float[] got, float[] want) {
    double diff = 0;
    double norm = 0;
    for (int i = 0; i < want.length; i++) {
      diff += (got[i] - (double) want[i]) * (got[i] - (double) want[i]);
      norm += (double) want[i] * want[i];
    }
    return Math.sqrt(diff / norm);
  }
}
