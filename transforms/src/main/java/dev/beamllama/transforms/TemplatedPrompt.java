package dev.beamllama.transforms;

import com.fasterxml.jackson.annotation.JsonProperty;
import dev.beamllama.io.PromptRecord;
import java.io.Serializable;

/**
 * A record with its prompt rendered: {@code text} as the model will read it, and {@code marked},
 * the form the tokenizer splits (special-token text from the record's content marked as text).
 * For the {@code complete} task both are the raw prompt.
 */
public record TemplatedPrompt(
    @JsonProperty("record") PromptRecord record,
    @JsonProperty("text") String text,
    @JsonProperty("marked") String marked) implements Serializable {}
