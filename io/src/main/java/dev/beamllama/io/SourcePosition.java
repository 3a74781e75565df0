package dev.beamllama.io;

import com.fasterxml.jackson.annotation.JsonProperty;
import java.io.Serializable;

/** Where a record came from: a file and its 1-based line (JSONL) or row (Parquet). */
public record SourcePosition(
    @JsonProperty("file") String file,
    @JsonProperty("line") Long line,
    @JsonProperty("row") Long row) implements Serializable {

  public static SourcePosition line(String file, long line) {
    return new SourcePosition(file, line, null);
  }

  public static SourcePosition row(String file, long row) {
    return new SourcePosition(file, null, row);
  }

  public static SourcePosition file(String file) {
    return new SourcePosition(file, null, null);
  }

  @Override
  public String toString() {
    return file + (line != null ? ":" + line : row != null ? " row " + row : "");
  }
}
