package dev.beamllama.model.engine;

import static dev.beamllama.model.Fixtures.relativeL2;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import dev.beamllama.model.Engines;
import dev.beamllama.model.Fixtures;
import dev.beamllama.model.ModelDirectory;
import dev.beamllama.model.sampling.Sampler;
import dev.beamllama.model.sampling.SamplingParams;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * What every engine backend must do, run against each (CpuEngineContractTest,
 * CudaEngineContractTest): Hugging Face transformers' prefill logits at every position and greedy
 * continuations on the golden tiny checkpoints, and a request's tokens depending only on (model,
 * prompt, params, seed), not on its batch, its run, preemption or the step size.
 */
abstract class EngineContractTest {
  private static final int[] PROMPT = {488, 80, 205, 336, 27, 40, 423};

  /** The backend under test. */
  abstract Engines.Kind kind();

  LlmEngine engine(String checkpoint, EngineOptions options) {
    return Engines.create(new ModelDirectory(Fixtures.goldenCheckpoint(checkpoint)), kind(), options);
  }

  static Stream<Arguments> cases() {
    List<Arguments> cases = new ArrayList<>();
    addCases(cases, "tiny-llama3-expected.json", "tiny-llama3-");
    addCases(cases, "tiny-llama31-ropescaled-expected.json", "tiny-llama31-ropescaled-");
    return cases.stream();
  }

  private static void addCases(List<Arguments> cases, String expected, String checkpointPrefix) {
    JsonNode root = Fixtures.json("hf-golden/" + expected);
    for (JsonNode c : root.get("cases")) {
      String dtype = c.get("dtype").asText();
      String checkpoint = checkpointPrefix + dtype;
      cases.add(Arguments.of(checkpoint, Fixtures.ints(c.get("prompt")), c.get("prefill_logits"), Fixtures.ints(c.get("greedy_continuation"))));
    }
  }

  @ParameterizedTest(name = "{0}, {1}-token prompt")
  @MethodSource("cases")
  void prefillLogitsMatchTransformers(String checkpoint, int[] prompt, JsonNode expectedLogits, int[] greedy) {
    boolean bf16 = checkpoint.endsWith("bf16");
    double tolerance = bf16 ? 3e-2 : 1e-4;
    try (LlmEngine engine = engine(checkpoint, EngineOptions.defaults())) {
      float[][] logits = engine.promptLogits(prompt);
      assertEquals(prompt.length, logits.length);
      for (int pos = 0; pos < prompt.length; pos++) {
        float[] want = Fixtures.floats(expectedLogits.get(pos));
        double error = relativeL2(logits[pos], want);
        assertTrue(error <= tolerance, checkpoint + " position " + pos + ": relative L2 error " + error + " > " + tolerance);
        assertEquals(Sampler.argmax(want), Sampler.argmax(logits[pos]), checkpoint + " position " + pos + ": argmax differs");
      }
    }
  }

  @ParameterizedTest(name = "{0}, {1}-token prompt")
  @MethodSource("cases")
  void greedyContinuationMatchesTransformers(String checkpoint, int[] prompt, JsonNode expectedLogits, int[] greedy) {
    try (LlmEngine engine = engine(checkpoint, EngineOptions.defaults())) {
      GenerationResult result = engine.generate(new GenerationRequest("golden", prompt, SamplingParams.greedy(greedy.length)));
      assertArrayEquals(greedy, result.tokenIds(), checkpoint + ": greedy continuation differs from transformers");
      assertEquals(FinishReason.LENGTH, result.finishReason());
    }
  }

  @ParameterizedTest
  @ValueSource(strings = {"tiny-llama3-f32", "tiny-llama3-bf16"})
  void aSequenceAloneAndInsideABatchOfEightOthersGivesIdenticalTokens(String checkpoint) {
    EngineOptions options = EngineOptions.defaults().withMaxNumSeqs(9);
    int[] alone = alone(checkpoint, options);
    assertArrayEquals(alone, alone(checkpoint, options), "two runs with the same seed");
    try (LlmEngine engine = engine(checkpoint, options)) {
      List<CompletableFuture<GenerationResult>> others = new ArrayList<>();
      for (int i = 0; i < 8; i++) {
        int[] prompt = new int[3 + 5 * i];
        for (int j = 0; j < prompt.length; j++) {
          prompt[j] = (31 * i + 17 * j) % 512;
        }
        others.add(engine.submit(request(prompt, i)));
      }
      GenerationResult batched = engine.submit(request(PROMPT, 1234)).join();
      others.forEach(CompletableFuture::join);
      assertArrayEquals(alone, batched.tokenIds(), "alone vs in a batch of 8 others");
      assertEquals(40, batched.completionTokens());
    }
  }

  @ParameterizedTest
  @ValueSource(ints = {3, 64})
  void preemptionAndSmallStepsDoNotChangeTokens(int maxBatchTokens) {
    String checkpoint = "tiny-llama3-f32";
    int[] reference = alone(checkpoint, EngineOptions.defaults());
    // A cache of 128 tokens (2 layers, 32 key/value floats per token and layer, f32) shared by 6
    // sequences of 47 forces preemptions.
    long bytesFor128Tokens = 2L * 2 * 32 * Float.BYTES * 128;
    EngineOptions tight = EngineOptions.defaults().withMaxNumSeqs(6).withMaxBatchTokens(maxBatchTokens).withKvCacheBytes(bytesFor128Tokens);
    try (LlmEngine engine = engine(checkpoint, tight)) {
      List<CompletableFuture<GenerationResult>> futures = new ArrayList<>();
      // A step holds the runner's lock: holding it here stalls the engine at its first step until
      // all six are queued. Otherwise the first request can run far ahead alone (a step of this
      // model takes microseconds) and finish before the others fill the cache, and nothing is preempted.
      synchronized (engine.runner()) {
        for (int i = 0; i < 6; i++) {
          futures.add(engine.submit(request(PROMPT, 1234)));
        }
      }
      for (CompletableFuture<GenerationResult> f : futures) {
        assertArrayEquals(reference, f.join().tokenIds());
      }
      assertTrue(engine.stats().preemptions() > 0, "the cache was meant to be too small for all six");
    }
  }

  /**
   * A prompt's logits are the same bits whatever the engine's sizes: with few sequences, small steps
   * and a cache of 256 tokens, the CUDA engine also splits a step's attention over several launches.
   */
  @ParameterizedTest
  @ValueSource(strings = {"tiny-llama3-f32", "tiny-llama3-bf16"})
  void promptLogitsDoNotDependOnTheEnginesSizes(String checkpoint) {
    int[] prompt = new int[200];
    for (int i = 0; i < prompt.length; i++) {
      prompt[i] = (37 * i + 11) % 512;
    }
    float[][] reference;
    try (LlmEngine engine = engine(checkpoint, EngineOptions.defaults())) {
      reference = engine.promptLogits(prompt);
    }
    long bytesFor256Tokens = 2L * 2 * 32 * Float.BYTES * 256;
    EngineOptions small = EngineOptions.defaults().withMaxNumSeqs(8).withMaxBatchTokens(64).withKvCacheBytes(bytesFor256Tokens);
    try (LlmEngine engine = engine(checkpoint, small)) {
      float[][] got = engine.promptLogits(prompt);
      for (int pos = 0; pos < prompt.length; pos++) {
        assertArrayEquals(reference[pos], got[pos], checkpoint + " position " + pos);
      }
    }
  }

  /**
   * The prefix cache changes no token: eight samples of one prompt and four prompts sharing its first
   * 40 tokens, with the cache off, on, and on in a cache so small that cached blocks are evicted and
   * sequences preempted. Small steps spread the admissions, so later sequences find earlier ones' blocks.
   */
  @ParameterizedTest
  @ValueSource(strings = {"tiny-llama3-f32", "tiny-llama3-bf16"})
  void thePrefixCacheChangesNoToken(String checkpoint) {
    int[] base = new int[45];
    for (int i = 0; i < base.length; i++) {
      base[i] = (29 * i + 5) % 512;
    }
    List<GenerationRequest> requests = new ArrayList<>();
    for (int seed = 0; seed < 8; seed++) {
      requests.add(new GenerationRequest("sample" + seed, base, SamplingParams.modelCard(seed).withMaxNewTokens(30)));
    }
    for (int i = 0; i < 4; i++) {
      int[] prompt = java.util.Arrays.copyOf(base, 50);
      for (int j = 40; j < prompt.length; j++) {
        prompt[j] = (7 * i + 13 * j) % 512;
      }
      requests.add(new GenerationRequest("shared" + i, prompt, SamplingParams.modelCard(100 + i).withMaxNewTokens(30)));
    }
    EngineOptions small = EngineOptions.defaults().withMaxBatchTokens(32);
    List<List<Integer>> off = generateAll(checkpoint, small.withPrefixCaching(false), requests, false, false);
    assertEquals(off, generateAll(checkpoint, small, requests, true, false), "cache on");
    long bytesFor128Tokens = 2L * 2 * 32 * Float.BYTES * 128;
    EngineOptions tight = small.withMaxNumSeqs(6).withKvCacheBytes(bytesFor128Tokens);
    assertEquals(off, generateAll(checkpoint, tight, requests, true, true), "cache on, evicted and preempted");
  }

  /**
   * Each request's tokens, all submitted at once; the engine must have taken cached blocks exactly
   * when {@code hits}, and preempted sequences when {@code preempts}.
   */
  private List<List<Integer>> generateAll(String checkpoint, EngineOptions options, List<GenerationRequest> requests, boolean hits,
      boolean preempts) {
    try (LlmEngine engine = engine(checkpoint, options)) {
      List<CompletableFuture<GenerationResult>> futures = new ArrayList<>();
      synchronized (engine.runner()) {
        requests.forEach(r -> futures.add(engine.submit(r)));
      }
      List<GenerationResult> results = futures.stream().map(CompletableFuture::join).toList();
      assertEquals(hits, engine.stats().cachedTokens() > 0, "tokens taken from the cache: " + engine.stats().cachedTokens());
      assertEquals(engine.stats().promptTokens(), results.stream().mapToLong(GenerationResult::promptTokensComputed).sum(),
          "the requests' own counts of prompt tokens computed add up to the steps'");
      if (preempts) {
        assertTrue(engine.stats().preemptions() > 0, "the cache was meant to be too small for all of them");
      }
      return results.stream().map(r -> java.util.Arrays.stream(r.tokenIds()).boxed().toList()).toList();
    }
  }

  private int[] alone(String checkpoint, EngineOptions options) {
    try (LlmEngine engine = engine(checkpoint, options)) {
      return engine.generate(request(PROMPT, 1234)).tokenIds();
    }
  }

  private static GenerationRequest request(int[] prompt, long seed) {
    return new GenerationRequest("r" + seed, prompt, SamplingParams.modelCard(seed).withMaxNewTokens(40));
  }
}
