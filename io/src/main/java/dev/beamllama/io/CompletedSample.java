package dev.beamllama.io;

import com.fasterxml.jackson.annotation.JsonProperty;
import com.fasterxml.jackson.databind.JsonNode;
import java.io.Serializable;

/**
 * A sample an earlier run wrote ({@link ResumeIO}): its record's id, its index, and the settings it
 * was generated with as one string. A resumed job takes it as done only when those are the settings
 * it would generate that sample with: a directory may also hold completions of other jobs (another
 * model, task, seed or sampling), and those are not this job's.
 */
public record CompletedSample(
    @JsonProperty("id") String id,
    @JsonProperty("sample_index") int sampleIndex,
    @JsonProperty("settings") String settings) implements Serializable {

  /** The settings that decide a sample's completion besides its prompt, as {@link CompletionRecord} records them. */
  public static String settings(String model, String task, long seed, double temperature, int topK, double topP, double repetitionPenalty,
      int maxNewTokens) {
    return String.join("|", model, task, Long.toString(seed), Double.toString(temperature), Integer.toString(topK), Double.toString(topP),
        Double.toString(repetitionPenalty), Integer.toString(maxNewTokens));
  }

  /** A whole completion row ({@link CompletionRecord#isWhole}) as read back; a missing setting matches no job. */
  static CompletedSample of(JsonNode row) {
    return new CompletedSample(row.get("id").asText(), row.get("sample_index").asInt(), settings(row.path("model").asText(),
        row.path("task").asText(), row.path("seed").asLong(), row.path("temperature").asDouble(), row.path("top_k").asInt(),
        row.path("top_p").asDouble(), row.path("repetition_penalty").asDouble(), row.path("max_new_tokens").asInt()));
  }
}
