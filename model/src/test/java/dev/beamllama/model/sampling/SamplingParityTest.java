package dev.beamllama.model.sampling;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import dev.beamllama.model.Fixtures;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/** Each sampling stage against Hugging Face's logits processors on fixed scores. */
class SamplingParityTest {
  private static final JsonNode FIXTURE = Fixtures.json("hf-golden/sampling-expected.json");

  static IntStream rows() {
    return IntStream.range(0, FIXTURE.get("scores").size());
  }

  @Test
  void fixtureUsesTheModelCardSettingsInGenerateOrder() {
    JsonNode params = FIXTURE.get("params");
    assertEquals(SamplingParams.DEFAULT_REPETITION_PENALTY, params.get("repetition_penalty").asDouble());
    assertEquals(SamplingParams.DEFAULT_TEMPERATURE, params.get("temperature").asDouble());
    assertEquals(SamplingParams.DEFAULT_TOP_K, params.get("top_k").asInt());
    assertEquals(SamplingParams.DEFAULT_TOP_P, params.get("top_p").asDouble());
    assertEquals("[\"RepetitionPenaltyLogitsProcessor\",\"TemperatureLogitsWarper\",\"TopKLogitsWarper\",\"TopPLogitsWarper\"]",
        FIXTURE.get("generate_builds").toString());
  }

  @ParameterizedTest(name = "row {0}")
  @MethodSource("rows")
  void everyStageMatchesTransformers(int row) {
    JsonNode params = FIXTURE.get("params");
    float[] scores = Fixtures.floats(FIXTURE.get("scores").get(row));
    int[] ids = Fixtures.ints(FIXTURE.get("input_ids").get(row));
    JsonNode stages = FIXTURE.get("stages");
    for (int stage = 0; stage < stages.size(); stage++) {
      String name = stages.get(stage).get("after").asText();
      switch (name) {
        case "RepetitionPenaltyLogitsProcessor" ->
            LogitsProcessors.repetitionPenalty(scores, ids, ids.length, (float) params.get("repetition_penalty").asDouble(), new float[ids.length]);
        case "TemperatureLogitsWarper" -> LogitsProcessors.temperature(scores, (float) params.get("temperature").asDouble());
        case "TopKLogitsWarper" -> LogitsProcessors.topK(scores, params.get("top_k").asInt());
        case "TopPLogitsWarper" -> LogitsProcessors.topP(scores, (float) params.get("top_p").asDouble());
        default -> throw new AssertionError("unknown stage " + name);
      }
      assertRowMatches(name, Fixtures.floats(stages.get(stage).get("scores").get(row)), scores);
    }
    float[] probs = new float[scores.length];
    LogitsProcessors.softmax(scores, probs);
    float[] want = Fixtures.floats(FIXTURE.get("probs").get(row));
    for (int i = 0; i < want.length; i++) {
      assertEquals(want[i], probs[i], 1e-5, "probability of token " + i);
      assertEquals(want[i] == 0f, probs[i] == 0f, "token " + i + " kept by one and removed by the other");
    }
  }

  private static void assertRowMatches(String stage, float[] want, float[] got) {
    for (int i = 0; i < want.length; i++) {
      boolean wantMasked = want[i] == Float.NEGATIVE_INFINITY;
      assertEquals(wantMasked, got[i] == Float.NEGATIVE_INFINITY, stage + ": -inf mask differs at token " + i);
      if (!wantMasked) {
        assertEquals(want[i], got[i], 1e-5 * Math.max(1, Math.abs(want[i])), stage + ": score of token " + i);
      }
    }
  }

  @Test
  void samplerAppliesTheStagesInThatOrder() {
    float[] scores = Fixtures.floats(FIXTURE.get("scores").get(0));
    int[] ids = Fixtures.ints(FIXTURE.get("input_ids").get(0));
    float[] want = Fixtures.floats(FIXTURE.get("probs").get(0));
    Sampler sampler = new Sampler(scores.length);
    for (int step = 0; step < 200; step++) {
      int token = sampler.sample(scores.clone(), ids, ids.length, SamplingParams.modelCard(7), step);
      assertTrue(want[token] > 0, "sampled token " + token + " that transformers gives probability 0");
    }
  }

  @Test
  void drawFollowsTheDistribution() {
    float[] probs = {0f, 0.25f, 0f, 0.75f};
    int[] counts = new int[4];
    for (int i = 0; i < 40_000; i++) {
      counts[Sampler.draw(probs, SeededRandom.uniform(99, i))]++;
    }
    assertEquals(0, counts[0]);
    assertEquals(0, counts[2]);
    assertEquals(0.25, counts[1] / 40_000.0, 0.01);
  }

  @Test
  void greedyTakesTheFirstMaximumAfterThePenalty() {
    float[] logits = {1f, 3f, 3f, 2f};
    Sampler sampler = new Sampler(4);
    assertEquals(1, sampler.sample(logits.clone(), new int[] {0}, 1, SamplingParams.greedy(1), 0));
    // Penalising token 1 (3 / 1.5 = 2) leaves token 2 as the maximum.
    assertEquals(2, sampler.sample(logits.clone(), new int[] {1}, 1, SamplingParams.greedy(1).withRepetitionPenalty(1.5), 0));
  }

  @Test
  void repetitionPenaltyAppliesOncePerDistinctToken() {
    float[] scores = {2f, -2f};
    LogitsProcessors.repetitionPenalty(scores, new int[] {0, 0, 1, 1, 1}, 5, 2f, new float[5]);
    assertEquals(1f, scores[0]);
    assertEquals(-4f, scores[1]);
  }
}
