package dev.beamllama.transforms;

import com.fasterxml.jackson.annotation.JsonProperty;
import dev.beamllama.io.PromptRecord;
import java.io.Serializable;

/** A record's prompt as token ids, ready for the engine; {@code truncated} when its document was cut to fit. */
public record TokenizedPrompt(
    @JsonProperty("record") PromptRecord record,
    @JsonProperty("prompt_ids") int[] promptIds,
    @JsonProperty("truncated") boolean truncated,
    @JsonProperty("completed_samples") int[] completedSamples) implements Serializable {

  public TokenizedPrompt(PromptRecord record, int[] promptIds, boolean truncated) {
    this(record, promptIds, truncated, new int[0]);
  }

  /** The same prompt, with samples an earlier run already wrote (--resumeFrom), which are not generated again. */
  public TokenizedPrompt withCompletedSamples(int[] samples) {
    return new TokenizedPrompt(record, promptIds, truncated, samples);
  }

  public boolean isCompleted(int sampleIndex) {
    if (completedSamples == null) {
      return false;
    }
    for (int done : completedSamples) {
      if (done == sampleIndex) {
        return true;
      }
    }
    return false;
  }
}
