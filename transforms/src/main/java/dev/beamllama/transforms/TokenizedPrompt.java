package dev.beamllama.transforms;

import com.fasterxml.jackson.annotation.JsonProperty;
import dev.beamllama.io.PromptRecord;
import java.io.Serializable;

/** A record's prompt as token ids, ready for the engine; {@code truncated} when its document was cut to fit. */
public record TokenizedPrompt(
    @JsonProperty("record") PromptRecord record,
    @JsonProperty("prompt_ids") int[] promptIds,
    @JsonProperty("truncated") boolean truncated) implements Serializable {}
