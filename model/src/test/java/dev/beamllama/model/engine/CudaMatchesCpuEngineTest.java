package dev.beamllama.model.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.beamllama.model.Engines;
import dev.beamllama.model.cuda.CudaTestDevice;
import dev.beamllama.model.Fixtures;
import dev.beamllama.model.ModelDirectory;
import dev.beamllama.model.demo.DemoCheckpoint;
import dev.beamllama.model.sampling.Sampler;
import dev.beamllama.model.sampling.SamplingParams;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The CUDA engine's logits are the CPU engine's, bf16 included, on every test checkpoint and on the
 * demo model (the 128K vocabulary): f32 to float rounding, bf16 to the rounding differences that
 * summing in another order gives (the tiny checkpoints come out identical on the emulated device).
 */
class CudaMatchesCpuEngineTest {
  @TempDir static Path dir;

  @ParameterizedTest
  @ValueSource(strings = {"tiny-llama3-f32", "tiny-llama3-bf16", "tiny-llama31-ropescaled-f32"})
  void goldenCheckpoints(String checkpoint) {
    float[][][] both = logits(new ModelDirectory(Fixtures.goldenCheckpoint(checkpoint)), prompt(40, 512));
    boolean bf16 = checkpoint.endsWith("bf16");
    for (int pos = 0; pos < both[0].length; pos++) {
      double error = Fixtures.relativeL2(both[1][pos], both[0][pos]);
      assertTrue(error <= (bf16 ? 1e-2 : 1e-5), checkpoint + " position " + pos + ": relative L2 " + error);
      assertEquals(Sampler.argmax(both[0][pos]), Sampler.argmax(both[1][pos]), checkpoint + " position " + pos + ": argmax");
    }
  }

  @Test
  void demoModel() throws Exception {
    Path demo = dir.resolve("demo");
    DemoCheckpoint.write(demo, Fixtures.llama3TokenizerDir());
    float[][][] both = logits(new ModelDirectory(demo), prompt(40, DemoCheckpoint.VOCAB));
    for (int pos = 0; pos < both[0].length; pos++) {
      double error = Fixtures.relativeL2(both[1][pos], both[0][pos]);
      assertTrue(error <= 1e-2, "position " + pos + ": relative L2 " + error);
    }
  }

  /**
   * Generation with a strong repetition penalty, eight sequences sharing the steps, gives the CPU
   * engine's tokens: the CUDA sampler reads each sequence's history from the token ids the forward
   * pass leaves at its cache slots, through its block table.
   */
  @Test
  void sampledTokensWithTheRepetitionPenaltyAreTheCpuEngines() {
    CudaTestDevice.require();
    ModelDirectory model = new ModelDirectory(Fixtures.goldenCheckpoint("tiny-llama3-f32"));
    SamplingParams params = SamplingParams.modelCard(0).withMaxNewTokens(48).withRepetitionPenalty(1.5);
    assertEquals(generate(model, Engines.Kind.CPU, params), generate(model, Engines.Kind.CUDA, params));
  }

  /** With top-k off every row is sampled over the whole vocabulary on the GPU: still the CPU engine's tokens. */
  @Test
  void sampledTokensWithTopKOffAreTheCpuEngines() {
    CudaTestDevice.require();
    ModelDirectory model = new ModelDirectory(Fixtures.goldenCheckpoint("tiny-llama3-f32"));
    SamplingParams params = SamplingParams.modelCard(0).withMaxNewTokens(48).withTopK(0).withTopP(0.8);
    assertEquals(generate(model, Engines.Kind.CPU, params), generate(model, Engines.Kind.CUDA, params));
  }

  /** Eight sequences sharing the steps, sequence i with {@code params} and seed i. */
  private static List<List<Integer>> generate(ModelDirectory model, Engines.Kind kind, SamplingParams shared) {
    try (LlmEngine engine = Engines.create(model, kind, EngineOptions.defaults().withBlockSize(16))) {
      List<CompletableFuture<GenerationResult>> results = new ArrayList<>();
      for (int seed = 0; seed < 8; seed++) {
        SamplingParams params = shared.withSeed(seed);
        results.add(engine.submit(new GenerationRequest("r" + seed, prompt(20 + 7 * seed, 512), params)));
      }
      return results.stream().map(r -> Arrays.stream(r.join().tokenIds()).boxed().toList()).toList();
    }
  }

  /** {cpu, cuda} logits of every position. */
  private static float[][][] logits(ModelDirectory model, int[] prompt) {
    CudaTestDevice.require();
    float[][][] both = new float[2][][];
    try (LlmEngine cpu = Engines.create(model, Engines.Kind.CPU, EngineOptions.defaults())) {
      both[0] = cpu.promptLogits(prompt);
    }
    try (LlmEngine cuda = Engines.create(model, Engines.Kind.CUDA, EngineOptions.defaults())) {
      both[1] = cuda.promptLogits(prompt);
    }
    return both;
  }

  private static int[] prompt(int length, int vocab) {
    Random random = new Random(length);
    int[] ids = new int[length];
    for (int i = 0; i < length; i++) {
      ids[i] = random.nextInt(vocab);
    }
    return ids;
  }
}
