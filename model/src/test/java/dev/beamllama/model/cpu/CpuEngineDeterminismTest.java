package dev.beamllama.model.cpu;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.beamllama.model.Engines;
import dev.beamllama.model.Fixtures;
import dev.beamllama.model.ModelDirectory;
import dev.beamllama.model.engine.EngineOptions;
import dev.beamllama.model.engine.GenerationRequest;
import dev.beamllama.model.engine.GenerationResult;
import dev.beamllama.model.engine.LlmEngine;
import dev.beamllama.model.sampling.SamplingParams;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** A request's tokens depend on (model, prompt, params, seed) only: not on its batch, run, or preemption. */
class CpuEngineDeterminismTest {
  private static final int[] PROMPT = {488, 80, 205, 336, 27, 40, 423};

  private static GenerationRequest request(String id, int[] prompt, long seed) {
    return new GenerationRequest(id, prompt, SamplingParams.modelCard(seed).withMaxNewTokens(40));
  }

  private static int[] alone(ModelDirectory model, EngineOptions options) {
    try (LlmEngine engine = Engines.cpu(model, options)) {
      return engine.generate(request("alone", PROMPT, 1234)).tokenIds();
    }
  }

  @ParameterizedTest
  @ValueSource(strings = {"tiny-llama3-f32", "tiny-llama3-bf16"})
  void aSequenceAloneAndInsideABatchOfEightOthersGivesIdenticalTokens(String checkpoint) {
    ModelDirectory model = new ModelDirectory(Fixtures.goldenCheckpoint(checkpoint));
    EngineOptions options = EngineOptions.defaults().withMaxNumSeqs(9);
    int[] alone = alone(model, options);
    assertArrayEquals(alone, alone(model, options), "two runs with the same seed");
    try (LlmEngine engine = Engines.cpu(model, options)) {
      List<CompletableFuture<GenerationResult>> others = new ArrayList<>();
      for (int i = 0; i < 8; i++) {
        int[] prompt = new int[3 + 5 * i];
        for (int j = 0; j < prompt.length; j++) {
          prompt[j] = (31 * i + 17 * j) % 512;
        }
        others.add(engine.submit(request("other" + i, prompt, i)));
      }
      GenerationResult batched = engine.submit(request("batched", PROMPT, 1234)).join();
      others.forEach(CompletableFuture::join);
      assertArrayEquals(alone, batched.tokenIds(), "alone vs in a batch of 8 others");
      assertEquals(40, batched.completionTokens());
      assertNotEquals(alone[0] + "," + alone[1] + "," + alone[2],
          others.get(0).join().tokenIds()[0] + "," + others.get(0).join().tokenIds()[1] + "," + others.get(0).join().tokenIds()[2],
          "different prompts and seeds should not produce the same start");
    }
  }

  @ParameterizedTest
  @ValueSource(ints = {3, 64})
  void preemptionAndSmallStepsDoNotChangeTokens(int maxBatchTokens) {
    ModelDirectory model = new ModelDirectory(Fixtures.goldenCheckpoint("tiny-llama3-f32"));
    int[] reference = alone(model, EngineOptions.defaults());
    // A cache of 128 tokens shared by 6 sequences of 47 forces preemptions.
    long bytesFor128Tokens = KvCache.bytesPerToken(2, 32) * 128;
    EngineOptions tight = EngineOptions.defaults().withMaxNumSeqs(6).withMaxBatchTokens(maxBatchTokens).withKvCacheBytes(bytesFor128Tokens);
    try (LlmEngine engine = Engines.cpu(model, tight)) {
      List<CompletableFuture<GenerationResult>> futures = new ArrayList<>();
      for (int i = 0; i < 6; i++) {
        futures.add(engine.submit(request("r" + i, PROMPT, 1234)));
      }
      for (CompletableFuture<GenerationResult> f : futures) {
        assertArrayEquals(reference, f.join().tokenIds());
      }
      assertTrue(engine.stats().preemptions() > 0, "the cache was meant to be too small for all six");
    }
  }
}
