package dev.beamllama.io;

import com.fasterxml.jackson.annotation.JsonProperty;
import com.fasterxml.jackson.annotation.JsonPropertyOrder;
import com.fasterxml.jackson.databind.JsonNode;
import java.io.Serializable;

/**
 * One generated sample: the record's {@code id} and {@code sample_index} (0..n-1), the completion
 * text and why it ended, token counts, whether the prompt's document was cut to fit
 * ({@code --overlong=truncate}), and everything needed to reproduce it: the model, the seed
 * and the sampling settings used. {@code latency_ms} is the time from submission to the engine to
 * the last token, the one field that differs between identical runs.
 */
@JsonPropertyOrder({"id", "sample_index", "completion", "finish_reason", "prompt_tokens", "prompt_truncated", "completion_tokens",
    "model", "task", "seed", "temperature", "top_k", "top_p", "repetition_penalty", "max_new_tokens", "latency_ms"})
public record CompletionRecord(
    @JsonProperty("id") String id,
    @JsonProperty("sample_index") int sampleIndex,
    @JsonProperty("completion") String completion,
    @JsonProperty("finish_reason") String finishReason,
    @JsonProperty("prompt_tokens") int promptTokens,
    @JsonProperty("prompt_truncated") boolean promptTruncated,
    @JsonProperty("completion_tokens") int completionTokens,
    @JsonProperty("model") String model,
    @JsonProperty("task") String task,
    @JsonProperty("seed") long seed,
    @JsonProperty("temperature") double temperature,
    @JsonProperty("top_k") int topK,
    @JsonProperty("top_p") double topP,
    @JsonProperty("repetition_penalty") double repetitionPenalty,
    @JsonProperty("max_new_tokens") int maxNewTokens,
    @JsonProperty("latency_ms") double latencyMs) implements Serializable {

  /**
   * Whether a row read back (an earlier run's shard or journal) is a whole completion: a string id,
   * an integer sample index and a string completion. Anything else, such as a line cut by a crash,
   * is not taken as done.
   */
  static boolean isWhole(JsonNode row) {
    JsonNode id = row.get("id");
    JsonNode sample = row.get("sample_index");
    JsonNode completion = row.get("completion");
    return id != null && id.isTextual() && sample != null && sample.canConvertToInt() && completion != null && completion.isTextual();
  }
}
