package dev.beamllama.io;

import com.fasterxml.jackson.annotation.JsonInclude;
import com.fasterxml.jackson.annotation.JsonProperty;
import java.io.Serializable;

/**
 * A record that could not be processed, with where it came from: the source file and its line
 * (JSONL, 1-based) or row (Parquet, 1-based), the id when it is known, the kind of error and a
 * message saying what to fix. Every input record ends as a completion or as one of these.
 */
@JsonInclude(JsonInclude.Include.ALWAYS)
public record DeadLetter(
    @JsonProperty("source_file") String sourceFile,
    @JsonProperty("line") Long line,
    @JsonProperty("row") Long row,
    @JsonProperty("id") String id,
    @JsonProperty("kind") String kind,
    @JsonProperty("message") String message) implements Serializable {

  public static DeadLetter of(SourcePosition at, String id, ErrorKind kind, String message) {
    return new DeadLetter(at.file(), at.line(), at.row(), id, kind.label(), message);
  }
}
