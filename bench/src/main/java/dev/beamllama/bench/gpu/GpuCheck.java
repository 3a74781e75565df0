package dev.beamllama.bench.gpu;

import static dev.beamllama.model.Fixtures.relativeL2;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.beamllama.bench.RandomCheckpoint;
import dev.beamllama.model.Engines;
import dev.beamllama.model.ModelDirectory;
import dev.beamllama.model.cpu.CpuModelRunner;
import dev.beamllama.model.cuda.Agreement;
import dev.beamllama.model.cuda.CudaModelRunner;
import dev.beamllama.model.cuda.KernelCheck;
import dev.beamllama.model.engine.EngineOptions;
import dev.beamllama.model.engine.GenerationRequest;
import dev.beamllama.model.engine.GenerationResult;
import dev.beamllama.model.engine.LlmEngine;
import dev.beamllama.model.engine.ModelRunner;
import dev.beamllama.model.engine.StepBatch;
import dev.beamllama.model.llama.ForwardTrace;
import dev.beamllama.model.sampling.Sampler;
import dev.beamllama.model.sampling.SamplingParams;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.CompletableFuture;

/**
 * The Java side of {@code scripts/gpu-check} on the GPU machine, in two runs so the diagnosis comes
 * before (and survives) the long transformers section:
 *
 * <ul>
 *   <li>{@code GpuCheck diagnose WORK_DIR [tiny|8b]}: the environment; every kernel and the GEMM
 *       wrapper against the CPU on random inputs of the tiny and (with {@code 8b}) the 8B shapes;
 *       a two-layer model of that shape through the CUDA and CPU engines, compared stage by stage;
 *       the sampler over 1,000 rows; device times of each kernel and GEMM at batch 1 and 256.
 *   <li>{@code GpuCheck engine GOLDEN_DIR REFERENCE_DIR}: the hf-golden parity cases, the 8B-shaped
 *       random checkpoint against transformers (logits, greedy tokens), the throughput workloads
 *       next to transformers' figures from the same run, and the largest one overlapped against
 *       step by step.
 * </ul>
 *
 * Every check is guarded: a failure becomes a line of the table, which always prints last. Exits 1
 * when a check failed, 2 for a bad command line.
 */
public final class GpuCheck {
  private static final ObjectMapper JSON = new ObjectMapper();
  private final List<String> table = new ArrayList<>();
  private boolean failed;

  public static void main(String[] args) {
    System.exit(run(args));
  }

  /** Runs a mode and prints its table last; returns the exit status (0 all passed, 1 a check failed, 2 bad arguments). */
  static int run(String[] args) {
    String mode = args.length > 0 ? args[0] : "";
    boolean diagnose = mode.equals("diagnose") && (args.length == 2 || args.length == 3);
    boolean engine = mode.equals("engine") && args.length == 3;
    if (!diagnose && !engine) {
      System.err.println("usage: GpuCheck diagnose WORK_DIR [tiny|8b] | GpuCheck engine GOLDEN_DIR REFERENCE_DIR");
      return 2;
    }
    GpuCheck check = new GpuCheck();
    CudaModelRunner.Probe gpu = CudaModelRunner.probe();
    if (!gpu.usable()) {
      check.row("CUDA", "the CUDA engine cannot run here: " + gpu.unavailableReason(), false);
    } else if (diagnose) {
      check.diagnose(Path.of(args[1]), args.length == 3 && args[2].equals("8b"));
    } else {
      check.golden(Path.of(args[1]));
      check.againstTransformers(Path.of(args[2]));
    }
    System.out.println();
    System.out.println("| check | result |");
    System.out.println("|---|---|");
    check.table.forEach(System.out::println);
    return check.failed ? 1 : 0;
  }

  private void row(String check, String result, boolean pass) {
    String line = "| " + check + " | " + result + (pass ? "" : " **FAIL**") + " |";
    System.out.println(line);
    table.add(line);
    failed |= !pass;
  }

  private void rows(List<KernelCheck.Result> results) {
    results.forEach(r -> row(r.check(), r.result(), r.pass()));
  }

  /** Runs {@code section}; whatever it throws becomes a failed line, and the next section runs. */
  private void guarded(String section, ThrowingRunnable body) {
    try {
      body.run();
    } catch (Exception | Error e) {
      e.printStackTrace(System.out);
      row(section, "threw " + e, false);
    }
  }

  @FunctionalInterface
  private interface ThrowingRunnable {
    void run() throws Exception;
  }

  // ---------------------------------------------------------------------------------------------
  // diagnose

  private void diagnose(Path work, boolean large) {
    KernelCheck.Shape shape = large ? KernelCheck.LLAMA_3_8B : KernelCheck.TINY;
    try (KernelCheck kernels = new KernelCheck()) {
      guarded("environment", () -> row("environment", kernels.environment(), true));
      guarded("kernels tiny", () -> rows(kernels.kernels(KernelCheck.TINY, true, 1)));
      if (large) {
        guarded("kernels 8B", () -> rows(kernels.kernels(KernelCheck.LLAMA_3_8B, false, 2)));
      }
      guarded("gemm tiny", () -> rows(kernels.gemm(KernelCheck.TINY, 3)));
      if (large) {
        guarded("gemm 8B", () -> rows(kernels.gemm(KernelCheck.LLAMA_3_8B, 4)));
      }
      guarded("forward", () -> forward(work, shape));
      guarded("sampler", () -> {
        KernelCheck.Result r = kernels.sampler(1000, shape.vocab(), 5);
        row(r.check(), r.result(), r.pass());
      });
      for (int batch : large ? new int[] {1, 256} : new int[] {1, 16}) {
        guarded("timings batch " + batch, () -> rows(kernels.timings(shape, batch, 512, large ? 20 : 2)));
      }
      guarded("timing prefill attention", () -> rows(List.of(large ? kernels.prefillAttentionTiming(shape, 8, 256, 20)
          : kernels.prefillAttentionTiming(shape, 2, 100, 2))));
    } catch (RuntimeException e) {
      e.printStackTrace(System.out);
      row("diagnosis", "cannot start: " + e, false);
    }
  }

  /**
   * A random two-layer model of {@code shape} through both engines' forward passes, every stage
   * compared: the first stage where the CUDA engine leaves the CPU engine's numbers is where to look.
   */
  private void forward(Path work, KernelCheck.Shape shape) throws IOException {
    RandomCheckpoint.Shape twoLayers = new RandomCheckpoint.Shape(shape.name() + "-2-layers", shape.hidden(), shape.intermediate(), 2,
        shape.heads(), shape.kvHeads(), shape.vocab(), false);
    Path dir = work.resolve("forward-" + shape.name());
    RandomCheckpoint.write(dir, null, twoLayers);
    int[] prompt = new int[24]; // across a block boundary, one chunk
    Random random = new Random(6);
    for (int i = 0; i < prompt.length; i++) {
      prompt[i] = random.nextInt(shape.vocab());
    }
    EngineOptions options = EngineOptions.defaults().withMaxNumSeqs(prompt.length);
    ModelDirectory model = new ModelDirectory(dir);
    StageRecorder cpu = new StageRecorder();
    StageRecorder cuda = new StageRecorder();
    try (CpuModelRunner runner = new CpuModelRunner(model.openWeights(), model.config(), options)) {
      runner.promptLogits(prompt, cpu);
    }
    try (CudaModelRunner runner = new CudaModelRunner(model.openWeights(), model.config(), options)) {
      runner.promptLogits(prompt, cuda);
    }
    String name = "forward " + twoLayers.name() + ", " + prompt.length + " tokens, CUDA vs CPU engine per stage";
    String firstApart = null;
    double worst = 0;
    String worstStage = "";
    for (Map.Entry<String, float[]> stage : cpu.stages.entrySet()) {
      float[] got = cuda.stages.get(stage.getKey());
      if (got == null || got.length != stage.getValue().length) {
        row(name, "the CUDA engine has no " + stage.getKey() + " of the CPU's size", false);
        return;
      }
      double error = relativeL2(got, stage.getValue());
      Agreement agreement = Agreement.of(got, stage.getValue(), got.length, 2, 1e-6);
      System.out.printf(Locale.ROOT, "gpu-check: forward %-28s rel L2 %.2e, %s%n", stage.getKey(), error, agreement);
      if (error > worst) {
        worst = error;
        worstStage = stage.getKey();
      }
      if (firstApart == null && error > 1e-3) {
        firstApart = stage.getKey() + String.format(Locale.ROOT, " (rel L2 %.2e)", error);
      }
    }
    row(name, String.format(Locale.ROOT, "%d stages, worst rel L2 %.2e at %s; first above 1e-3: %s", cpu.stages.size(), worst, worstStage,
        firstApart == null ? "none" : firstApart), worst <= 1e-2);
  }

  /** Keeps a copy of every stage a forward pass shows, by layer and stage, in order. */
  private static final class StageRecorder implements ForwardTrace {
    final Map<String, float[]> stages = new LinkedHashMap<>();

    @Override
    public void stage(int layer, Stage stage, float[] values, int rows, int width) {
      String key = (layer < 0 ? "" : "layer " + layer + " ") + stage;
      stages.put(key, Arrays.copyOf(values, rows * width));
    }
  }

  // ---------------------------------------------------------------------------------------------
  // engine

  /** (1) Every hf-golden case: prefill logits and greedy continuations, as the CPU engine's parity test. */
  private void golden(Path dir) {
    guarded("golden", () -> goldenCases(dir));
  }

  private void goldenCases(Path dir) throws IOException {
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
    return new LlmEngine(new CudaModelRunner(model.openWeights(), model.config(), options), new int[0]);
  }

  /** The 8B-shaped random checkpoint transformers wrote: parity and throughput, one engine load for both. */
  private void againstTransformers(Path reference) {
    guarded("8B checkpoint", () -> {
      ModelDirectory large = new ModelDirectory(reference.resolve("llama8b"));
      long start = System.nanoTime();
      try (LlmEngine engine = engineWithoutStops(large, gpuOptions())) {
        System.out.printf(Locale.ROOT, "gpu-check: loaded %s in %.1f s: %s%n", large.path(), (System.nanoTime() - start) / 1e9,
            engine.runner().describe());
        guarded("8B parity", () -> largeModel(engine, reference));
        guarded("throughput", () -> throughput(engine, reference));
        // Last: this engine's prefix cache no longer describes the runner's cache after it.
        guarded("overlapped steps", () -> overlapAgainstStepByStep(engine, reference));
      }
    });
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

  /**
   * (3) The workloads, with the model card's sampling, ours next to transformers' from the
   * same run; then the first request of the largest alone: its tokens must be those it got in the
   * batch (the engine's contract: results do not depend on batching).
   */
  private void throughput(LlmEngine engine, Path reference) throws IOException {
    JsonNode ref = JSON.readTree(reference.resolve("hf-reference.json").toFile());
    for (JsonNode w : ref.get("throughput")) {
      int batch = w.get("batch").asInt();
      int promptTokens = w.get("prompt_tokens").asInt();
      int newTokens = w.get("new_tokens").asInt();
      run(engine, requests(Math.min(batch, 8), 16, 4, 0)); // warm-up
      // Prompts of each workload's own (seeded by its batch size): the prefix cache would otherwise
      // hand one workload's prompt blocks to the next, which transformers does not get.
      List<GenerationRequest> requests = requests(batch, promptTokens, newTokens, batch);
      long start = System.nanoTime();
      List<GenerationResult> results = run(engine, requests);
      double seconds = (System.nanoTime() - start) / 1e9;
      double tokensPerSecond = results.stream().mapToLong(GenerationResult::completionTokens).sum() / seconds;
      double hf = w.get("tokens_per_s").asDouble();
      double floor = w.get("floor_tokens_per_s").asDouble();
      // The targets: batch 1 at 0.8 of its floor; a large batch at 0.85 of its floor and 6x transformers.
      double ofFloor = batch == 1 ? 0.8 : 0.85;
      boolean pass = tokensPerSecond >= ofFloor * floor && (batch == 1 || tokensPerSecond >= 6 * hf);
      row(String.format(Locale.ROOT, "throughput %d prompts, %d in / %d out", batch, promptTokens, newTokens), String.format(Locale.ROOT,
          "ours %.1f tokens/s, transformers %.1f tokens/s (%.1fx%s); floor %.1f tokens/s (%s): ours %.2f of it, target %.2f",
          tokensPerSecond, hf, tokensPerSecond / hf, batch == 1 ? "" : ", target 6x", floor, w.get("floor").asText(), tokensPerSecond / floor,
          ofFloor), pass);
      if (batch > 1) {
        // Alone, request 0 also takes its prompt's blocks from the prefix cache: the same tokens either way.
        int[] batched = results.get(0).tokenIds();
        int[] alone = run(engine, requests.subList(0, 1)).get(0).tokenIds();
        int same = 0;
        while (same < Math.min(alone.length, batched.length) && alone[same] == batched[same]) {
          same++;
        }
        boolean identical = Arrays.equals(alone, batched);
        row(String.format(Locale.ROOT, "batch invariance: request 0 of %d alone and batched", batch), identical
            ? "identical " + alone.length + " sampled tokens" : "differ from token " + same + " of " + alone.length, identical);
      }
    }
  }

  /**
   * (4) What overlapping steps gives: the largest workload again, overlapped (the engine's way on a
   * GPU) and then step by step through a second engine on the same runner (each step's tokens taken
   * before the next is laid out), in that order; the tokens must be the same.
   */
  private void overlapAgainstStepByStep(LlmEngine engine, Path reference) throws IOException {
    JsonNode largest = null;
    for (JsonNode w : JSON.readTree(reference.resolve("hf-reference.json").toFile()).get("throughput")) {
      largest = largest == null || w.get("batch").asInt() > largest.get("batch").asInt() ? w : largest;
    }
    int batch = largest.get("batch").asInt();
    // Seeded apart from the throughput section's prompts, so neither run finds them in the prefix cache.
    List<GenerationRequest> requests = requests(batch, largest.get("prompt_tokens").asInt(), largest.get("new_tokens").asInt(), batch + 1);
    long start = System.nanoTime();
    List<GenerationResult> overlapped = run(engine, requests);
    double overlappedSeconds = (System.nanoTime() - start) / 1e9;
    List<GenerationResult> stepByStep;
    double stepByStepSeconds;
    try (LlmEngine oneAtATime = new LlmEngine(new StepByStep(engine.runner()), new int[0])) {
      start = System.nanoTime();
      stepByStep = run(oneAtATime, requests);
      stepByStepSeconds = (System.nanoTime() - start) / 1e9;
    }
    long tokens = overlapped.stream().mapToLong(GenerationResult::completionTokens).sum();
    boolean same = true;
    for (int i = 0; i < requests.size(); i++) {
      same &= Arrays.equals(overlapped.get(i).tokenIds(), stepByStep.get(i).tokenIds());
    }
    row(String.format(Locale.ROOT, "overlapped steps, %d prompts", batch), String.format(Locale.ROOT,
        "overlapped %.1f tokens/s, step by step %.1f tokens/s (%.3fx); tokens %s", tokens / overlappedSeconds, tokens / stepByStepSeconds,
        stepByStepSeconds / overlappedSeconds, same ? "identical" : "DIFFER"), same);
  }

  /** A runner as one that does not overlap steps: the engine takes each step's tokens before it lays out the next. */
  private record StepByStep(ModelRunner runner) implements ModelRunner {
    @Override public EngineOptions options() { return runner.options(); }
    @Override public int kvBlocks() { return runner.kvBlocks(); }
    @Override public int blockSize() { return runner.blockSize(); }
    @Override public int maxSequenceLength() { return runner.maxSequenceLength(); }
    @Override public int vocabularySize() { return runner.vocabularySize(); }
    @Override public int[] step(StepBatch batch) { return runner.step(batch); }
    @Override public float[][] promptLogits(int[] promptIds, ForwardTrace trace) { return runner.promptLogits(promptIds, trace); }
    @Override public String describe() { return runner.describe() + ", step by step"; }
    @Override public void close() {} // the runner is its own engine's
  }

  /** {@code batch} requests of random prompts with the model card's sampling (seeds from {@code seed}). */
  private static List<GenerationRequest> requests(int batch, int promptTokens, int newTokens, long seed) {
    Random random = new Random(seed);
    List<GenerationRequest> requests = new ArrayList<>();
    for (int b = 0; b < batch; b++) {
      int[] prompt = new int[promptTokens];
      for (int i = 0; i < promptTokens; i++) {
        prompt[i] = 1000 + random.nextInt(119_000);
      }
      requests.add(new GenerationRequest("w" + b, prompt, SamplingParams.modelCard(seed * 1000 + b).withMaxNewTokens(newTokens)));
    }
    return requests;
  }

  /** All of {@code requests} at once, their results in order. */
  private static List<GenerationResult> run(LlmEngine engine, List<GenerationRequest> requests) {
    List<CompletableFuture<GenerationResult>> futures = new ArrayList<>();
    for (GenerationRequest request : requests) {
      futures.add(engine.submit(request));
    }
    return futures.stream().map(CompletableFuture::join).toList();
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
}
