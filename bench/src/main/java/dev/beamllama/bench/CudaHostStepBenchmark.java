package dev.beamllama.bench;

import dev.beamllama.bench.RandomCheckpoint.Shape;
import dev.beamllama.model.Engines;
import dev.beamllama.model.ModelDirectory;
import dev.beamllama.model.config.LlamaConfig;
import dev.beamllama.model.engine.EngineOptions;
import dev.beamllama.model.engine.GenerationRequest;
import dev.beamllama.model.engine.GenerationResult;
import dev.beamllama.model.engine.LlmEngine;
import dev.beamllama.model.engine.StepListener;
import dev.beamllama.model.sampling.SamplingParams;
import dev.beamllama.model.sampling.SeededRandom;
import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.CompletableFuture;

/**
 * The CUDA engine's host time per decode step: what the engine thread spends to schedule, lay out,
 * launch, copy and synchronise one step, measured on the emulated device with its arithmetic
 * switched off ({@code CUDA_EMU_SKIP_COMPUTE=1}), so nothing but the host's work is timed.
 *
 * <p>The model has the 8B's layout as far as the host sees it: 32 layers (the launches and GEMM calls
 * per step), 32 query and 8 KV heads, the 128,256-token vocabulary and 8,192 positions (the block
 * tables' width), with narrow matrices (hidden 512: heads of 16, the least bf16 attention takes), which
 * only the skipped arithmetic would read.
 * For each batch size, {@code batch} requests with the model card's sampling decode together; a
 * decode step is one whose every sequence samples and none is in prefill. Three figures per step:
 * {@code step} (the engine's own timing, from a step's launch to its tokens: since steps overlap on
 * the CUDA engine, it includes laying out and launching the next step),
 * {@code loop} (from one decode step's end to the next: scheduling and result handling too), and
 * the engine thread's CPU time over that loop, which this VM's drifting speed and other processes
 * disturb less than wall time (with the arithmetic off, the emulator's work runs on that thread).
 * Rounds alternate the batch sizes; the table gives the median of the rounds' medians and the range.
 *
 * <p>{@code scripts/bench-cuda-host [--batch 1,256] [--prompt-tokens 128] [--new-tokens 256] [--runs 3]}
 */
public final class CudaHostStepBenchmark {
  /** The 8B's host-visible layout with narrow matrices (see the class comment). */
  static final Shape LAYOUT_8B = new Shape("llama-3-8b-layout", 512, 512, 32, 32, 8, 128256, false);
  private static final ThreadMXBean ENGINE_THREAD = ManagementFactory.getThreadMXBean();

  private CudaHostStepBenchmark() {}

  public static void main(String[] argv) throws IOException {
    Path modelDir = null;
    Path tokenizer = null;
    int[] batches = {1, 256};
    int promptTokens = 128;
    int newTokens = 256;
    int runs = 3;
    for (int i = 0; i < argv.length; i += 2) {
      String value = i + 1 < argv.length ? argv[i + 1] : null;
      if (value == null) {
        usage("missing value for " + argv[i]);
      }
      switch (argv[i]) {
        case "--model-dir" -> modelDir = Path.of(value);
        case "--tokenizer" -> tokenizer = Path.of(value);
        case "--batch" -> batches = Arrays.stream(value.split(",")).mapToInt(s -> Integer.parseInt(s.trim())).toArray();
        case "--prompt-tokens" -> promptTokens = Integer.parseInt(value);
        case "--new-tokens" -> newTokens = Integer.parseInt(value);
        case "--runs" -> runs = Integer.parseInt(value);
        default -> usage("unknown option " + argv[i]);
      }
    }
    if (modelDir == null || tokenizer == null) {
      usage("--model-dir and --tokenizer are required");
    }
    if (!"1".equals(System.getenv("CUDA_EMU_SKIP_COMPUTE"))) {
      usage("CUDA_EMU_SKIP_COMPUTE=1 is not set: this measures the host's time on the emulated device with its arithmetic off");
    }
    // Written on first use, and again when an earlier build left another layout there.
    if (!Files.exists(modelDir.resolve("model.safetensors"))
        || LlamaConfig.read(modelDir.resolve("config.json")).hiddenSize() != LAYOUT_8B.hidden()) {
      RandomCheckpoint.write(modelDir, tokenizer, LAYOUT_8B);
    }
    ModelDirectory dir = ModelDirectory.open(modelDir.toString());
    int maxBatch = Arrays.stream(batches).max().orElse(1);
    long tokens = (long) maxBatch * (promptTokens + newTokens + 16);
    long bytesPerToken = 2L * dir.config().numLayers() * dir.config().kvDim() * 2;
    EngineOptions options = EngineOptions.defaults().withMaxNumSeqs(maxBatch).withMaxBatchTokens(Math.max(2048, promptTokens))
        .withKvCacheBytes(tokens * bytesPerToken);
    try (LlmEngine engine = Engines.cuda(dir, options)) {
      String device = engine.runner().describe();
      if (!device.contains("EMULATED")) {
        usage("the engine is not on the emulated device (" + device + "): put scripts/build-cuda-emulator's directory on LD_LIBRARY_PATH");
      }
      System.out.printf(Locale.ROOT, "engine: %s%nlayout: %s, prompt %d tokens, %d new tokens, %d rounds%n", device, LAYOUT_8B, promptTokens,
          newTokens, runs);
      for (int batch : batches) {
        run(engine, batch, promptTokens, newTokens); // warm-up: the JIT and the emulator's first launches
      }
      double[][][] results = new double[batches.length][runs][];
      for (int r = 0; r < runs; r++) {
        for (int b = 0; b < batches.length; b++) {
          results[b][r] = run(engine, batches[b], promptTokens, newTokens);
        }
      }
      System.out.println("| batch | ms per decode step (step) | range | ms per decode step (loop) | range | CPU ms per loop | range | decode steps per round |");
      System.out.println("|---|---|---|---|---|---|---|---|");
      for (int b = 0; b < batches.length; b++) {
        double[] step = DecodeBenchmark.column(results[b], 0);
        double[] loop = DecodeBenchmark.column(results[b], 1);
        double[] cpu = DecodeBenchmark.column(results[b], 2);
        System.out.printf(Locale.ROOT, "| %d | %.3f | %.3f-%.3f | %.3f | %.3f-%.3f | %.3f | %.3f-%.3f | %.0f |%n", batches[b],
            DecodeBenchmark.median(step), min(step), max(step), DecodeBenchmark.median(loop), min(loop), max(loop),
            DecodeBenchmark.median(cpu), min(cpu), max(cpu), results[b][0][3]);
      }
    }
  }

  /** One round of {@code batch} sequences: median ms per decode {step, loop, loop's CPU time}, and the decode steps. */
  private static double[] run(LlmEngine engine, int batch, int promptTokens, int newTokens) {
    List<Double> stepMillis = new ArrayList<>();
    List<Double> loopMillis = new ArrayList<>();
    List<Double> cpuMillis = new ArrayList<>();
    long[] lastDecodeEnd = {0, 0}; // wall and CPU nanos at the last decode step's end; 0 after any other step
    StepListener listener = (sequences, stepPromptTokens, sampled, nanos) -> {
      long now = System.nanoTime();
      long cpu = ENGINE_THREAD.getCurrentThreadCpuTime(); // the listener runs on the engine thread
      boolean decode = stepPromptTokens == 0 && sequences == batch && sampled == batch;
      if (decode) {
        stepMillis.add(nanos / 1e6);
        if (lastDecodeEnd[0] != 0) {
          loopMillis.add((now - lastDecodeEnd[0]) / 1e6);
          cpuMillis.add((cpu - lastDecodeEnd[1]) / 1e6);
        }
      }
      lastDecodeEnd[0] = decode ? now : 0;
      lastDecodeEnd[1] = cpu;
    };
    engine.stats().addStepListener(listener);
    try {
      List<CompletableFuture<GenerationResult>> futures = new ArrayList<>();
      for (int b = 0; b < batch; b++) {
        int[] prompt = new int[promptTokens];
        for (int i = 0; i < promptTokens; i++) {
          prompt[i] = (int) (SeededRandom.uniform(b, i) * 100_000);
        }
        futures.add(engine.submit(new GenerationRequest("host-" + b, prompt, SamplingParams.modelCard(b).withMaxNewTokens(newTokens))));
      }
      futures.forEach(CompletableFuture::join);
    } finally {
      engine.stats().removeStepListener(listener);
    }
    if (stepMillis.isEmpty() || loopMillis.isEmpty()) {
      throw new IllegalStateException("no decode step of " + batch + " sequences: raise --new-tokens");
    }
    return new double[] {DecodeBenchmark.median(unbox(stepMillis)), DecodeBenchmark.median(unbox(loopMillis)),
        DecodeBenchmark.median(unbox(cpuMillis)), stepMillis.size()};
  }

  private static double[] unbox(List<Double> values) {
    return values.stream().mapToDouble(Double::doubleValue).toArray();
  }

  private static double min(double[] values) {
    return Arrays.stream(values).min().orElse(Double.NaN);
  }

  private static double max(double[] values) {
    return Arrays.stream(values).max().orElse(Double.NaN);
  }

  private static void usage(String problem) {
    System.err.println("bench-cuda-host: " + problem);
    System.err.println("usage: scripts/bench-cuda-host [--batch 1,256] [--prompt-tokens 128] [--new-tokens 256] [--runs 3]");
    System.exit(2);
  }
}
