package dev.beamllama.model.engine;

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
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The CPU engine against Hugging Face transformers on the golden tiny checkpoints: prefill logits
 * at every position and greedy continuations.
 */
class HfGoldenParityTest {
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
    try (LlmEngine engine = Engines.cpu(new ModelDirectory(Fixtures.goldenCheckpoint(checkpoint)), EngineOptions.defaults())) {
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
    try (LlmEngine engine = Engines.cpu(new ModelDirectory(Fixtures.goldenCheckpoint(checkpoint)), EngineOptions.defaults())) {
      GenerationResult result = engine.generate(new GenerationRequest("golden", prompt, SamplingParams.greedy(greedy.length)));
      assertArrayEquals(greedy, result.tokenIds(), checkpoint + ": greedy continuation differs from transformers");
      assertEquals(FinishReason.LENGTH, result.finishReason());
    }
  }

  static double relativeL2(float[] got, float[] want) {
    double diff = 0;
    double norm = 0;
    for (int i = 0; i < want.length; i++) {
      diff += (got[i] - (double) want[i]) * (got[i] - (double) want[i]);
      norm += (double) want[i] * want[i];
    }
    return Math.sqrt(diff / norm);
  }
}
