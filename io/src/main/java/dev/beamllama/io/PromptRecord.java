package dev.beamllama.io;

import com.fasterxml.jackson.annotation.JsonProperty;
import java.io.Serializable;
import java.util.List;

/**
 * One validated input record: its {@code id}, whichever content fields it carries (a chat
 * {@code messages} list, {@code system} + {@code user}, {@code text}, {@code context} +
 * {@code question}, or a raw {@code prompt}), optional per-record sampling overrides, and where it
 * came from. Which content fields a record must carry depends on the job's task; that is checked
 * when the prompt is built.
 */
public record PromptRecord(
    @JsonProperty("id") String id,
    @JsonProperty("messages") List<Message> messages,
    @JsonProperty("system") String system,
    @JsonProperty("user") String user,
    @JsonProperty("text") String text,
    @JsonProperty("context") String context,
    @JsonProperty("question") String question,
    @JsonProperty("prompt") String prompt,
    @JsonProperty("overrides") SamplingOverrides overrides,
    @JsonProperty("source") SourcePosition source) implements Serializable {

  /** One turn of a {@code messages} list. */
  public record Message(@JsonProperty("role") String role, @JsonProperty("content") String content) implements Serializable {}

  /** Per-record sampling settings; null fields keep the job's. */
  public record SamplingOverrides(
      @JsonProperty("max_new_tokens") Integer maxNewTokens,
      @JsonProperty("temperature") Double temperature,
      @JsonProperty("top_k") Integer topK,
      @JsonProperty("top_p") Double topP,
      @JsonProperty("repetition_penalty") Double repetitionPenalty,
      @JsonProperty("n") Integer n,
      @JsonProperty("seed") Long seed) implements Serializable {

    public static final SamplingOverrides NONE = new SamplingOverrides(null, null, null, null, null, null, null);
  }
}
