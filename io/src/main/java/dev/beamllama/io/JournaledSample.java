package dev.beamllama.io;

import com.fasterxml.jackson.annotation.JsonProperty;
import java.io.Serializable;

/**
 * A finished sample that is in the job's journal, named by its key: what flows from generation to
 * the output's writer when the job journals ({@link CompletionIO.Write#fromJournal}), so a runner
 * that holds finished work until the write (the DirectRunner holds it all) holds a key per sample,
 * not its completion text.
 */
public record JournaledSample(@JsonProperty("id") String id, @JsonProperty("sample_index") int sampleIndex) implements Serializable {
  public static JournaledSample of(CompletionRecord completion) {
    return new JournaledSample(completion.id(), completion.sampleIndex());
  }
}
